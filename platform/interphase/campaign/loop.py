"""One iteration of a campaign, as code: the steps in order and what each reads.

::

    generate ──► label ──► fit ──► select ──► refit ──► augment
       ▲                                                   │
       │   (next iteration)                              train
       │                                                   │
       └──────────────── explore ◄─────────────────────────┘
                            │
                         evaluate ──► summary

Each step reads the typed outputs of earlier steps (:class:`Reads`), loaded
from their rows; the order here, not :class:`~interphase.campaign.records.StepName`'s,
is the order the loop runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import StepName
from interphase.campaign.steps import (
    augment,
    evaluate,
    explore,
    fit,
    generate,
    label,
    refit,
    select,
    summary,
    train,
)
from interphase.campaign.steps.contract import StepOutputs, required_outputs
from interphase.db.session import transaction


def this_iteration(ctx: StepContext) -> int | None:
    return ctx.iteration


def previous_iteration(ctx: StepContext) -> int | None:
    """The iteration before (None in the first: nothing to read)."""
    return ctx.iteration - 1 if ctx.iteration > 0 else None


def exploration_starts(ctx: StepContext) -> int | None:
    """Where MD starts from: this iteration's candidates, or always the first's."""
    return ctx.iteration if ctx.config.exploration.new_starts_each_iteration else 0


@dataclass(frozen=True)
class Reads:
    """One input of a step: the outputs of ``step`` in the iteration ``of`` names."""

    step: StepName
    of: Callable[[StepContext], int | None] = this_iteration


@dataclass(frozen=True)
class Step:
    """A step of the loop: its run function, its outputs' model and what it reads."""

    name: StepName
    run: Callable[[StepContext, Any], StepOutputs]
    outputs: type[StepOutputs]
    inputs: type[Any]
    #: ``Inputs`` field -> the earlier outputs it takes.
    reads: dict[str, Reads] = field(default_factory=dict)


S = StepName

#: One iteration, in order.
STEPS: tuple[Step, ...] = (
    Step(
        S.generate,
        generate.run,
        generate.Outputs,
        generate.Inputs,
        {"explored": Reads(S.explore, previous_iteration)},
    ),
    Step(S.label, label.run, label.Outputs, label.Inputs, {"generate": Reads(S.generate)}),
    Step(S.fit, fit.run, fit.Outputs, fit.Inputs),
    Step(
        S.select,
        select.run,
        select.Outputs,
        select.Inputs,
        {"generate": Reads(S.generate), "fit": Reads(S.fit)},
    ),
    Step(
        S.refit,
        refit.run,
        refit.Outputs,
        refit.Inputs,
        {"fit": Reads(S.fit), "select": Reads(S.select)},
    ),
    Step(S.augment, augment.run, augment.Outputs, augment.Inputs, {"refit": Reads(S.refit)}),
    Step(S.train, train.run, train.Outputs, train.Inputs),
    Step(
        S.explore,
        explore.run,
        explore.Outputs,
        explore.Inputs,
        {"train": Reads(S.train), "generate": Reads(S.generate, exploration_starts)},
    ),
    Step(
        S.evaluate,
        evaluate.run,
        evaluate.Outputs,
        evaluate.Inputs,
        {"train": Reads(S.train), "explore": Reads(S.explore), "refit": Reads(S.refit)},
    ),
    Step(
        S.summary,
        summary.run,
        summary.Outputs,
        summary.Inputs,
        {
            name: Reads(S(name))
            for name in ("generate", "label", "select", "train", "explore", "evaluate")
        },
    ),
)

#: The steps' names, in the loop's order.
STEP_ORDER: tuple[StepName, ...] = tuple(step.name for step in STEPS)

_BY_NAME = {step.name: step for step in STEPS}


def step_of(name: StepName | str) -> Step:
    return _BY_NAME[StepName(name)]


def read_outputs(name: StepName | str, stored: dict[str, Any]) -> StepOutputs:
    """A step's stored outputs (``campaign_step.outputs``) as its typed model."""
    return step_of(name).outputs.model_validate(stored or {})


def load_inputs(session: Session, ctx: StepContext, step: Step) -> Any:
    """The step's ``Inputs``: the outputs of the earlier steps it reads."""
    values: dict[str, StepOutputs | None] = {}
    for field_name, reads in step.reads.items():
        index = reads.of(ctx)
        values[field_name] = (
            None
            if index is None
            else required_outputs(
                session, ctx.campaign_id, index, reads.step, step_of(reads.step).outputs
            )
        )
    return step.inputs(**values)


def run_step(ctx: StepContext) -> StepOutputs:
    """Run ``ctx.step`` on the outputs it reads; the step records its own outputs."""
    step = step_of(ctx.step)
    with transaction(ctx.url, read_only=True) as session:
        inputs = load_inputs(session, ctx, step)
    return step.run(ctx, inputs)
