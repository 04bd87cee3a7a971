"""Training runs side by side: each head's errors on the test and validation splits.

Test errors are those a campaign's evaluate step recorded for the model its
train step produced (``campaign_step.outputs["test_errors"]``); validation
errors are the run's own (``training_run.metrics``, best model). A run outside
a campaign (``interphase train``) has validation errors only.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.records import StepName
from interphase.db.models import Campaign, CampaignStep, Iteration, StepState, TrainingRun

#: The most runs one comparison shows.
MAX_COMPARED_RUNS = 12


class Split(enum.StrEnum):
    test = "test"
    validation = "validation"


@dataclass(frozen=True)
class HeadErrors:
    """One head's errors on one split (None where not measured)."""

    n_structures: int | None
    energy_mae_mev_per_atom: float | None
    force_mae_mev_per_angstrom: float | None


@dataclass(frozen=True)
class Quantity:
    """A row of the comparison: which value, its label, whether lower is better."""

    field: str
    label: str
    lower_is_better: bool


QUANTITIES = (
    Quantity("energy_mae_mev_per_atom", "energy MAE (meV/atom)", lower_is_better=True),
    Quantity("force_mae_mev_per_angstrom", "force MAE (meV/Å)", lower_is_better=True),
    Quantity("n_structures", "structures", lower_is_better=False),
)


@dataclass(frozen=True)
class ComparedRun:
    id: int
    status: str
    campaign_id: int | None
    campaign: str | None
    iteration_index: int | None
    heads: list[str]
    errors: dict[Split, dict[str, HeadErrors]]  # split -> head -> errors
    test_note: str | None  # why there are no test errors, when there are none


@dataclass(frozen=True)
class ComparisonRow:
    head: str
    split: Split
    quantity: Quantity
    values: list[float | int | None]  # one per run, in the runs' order
    best: frozenset[int]  # positions of the best value (none with fewer than two values)
    first_of_head: bool


@dataclass(frozen=True)
class Comparison:
    runs: list[ComparedRun]
    rows: list[ComparisonRow]


def compared_runs(session: Session, run_ids: list[int]) -> tuple[list[ComparedRun], list[int]]:
    """The runs of ``run_ids`` in that order, and the ids with no run."""
    found = {
        run.id: (run, campaign, index)
        for run, campaign, index in session.execute(
            select(TrainingRun, Campaign.name, Iteration.index)
            .outerjoin(Campaign, TrainingRun.campaign_id == Campaign.id)
            .outerjoin(Iteration, TrainingRun.iteration_id == Iteration.id)
            .where(TrainingRun.id.in_(run_ids))
        )
    }
    steps = _train_and_evaluate_outputs(session, [r.iteration_id for r, _, _ in found.values()])
    runs = []
    for run_id in run_ids:
        if run_id not in found:
            continue
        run, campaign, index = found[run_id]
        test, note = _test_errors(run, steps.get(run.iteration_id or -1, {}))
        runs.append(
            ComparedRun(
                id=run.id,
                status=run.status,
                campaign_id=run.campaign_id,
                campaign=campaign,
                iteration_index=index,
                heads=list(run.heads or []),
                errors={Split.test: test, Split.validation: _validation_errors(run)},
                test_note=note,
            )
        )
    return runs, [run_id for run_id in run_ids if run_id not in found]


def _train_and_evaluate_outputs(
    session: Session, iteration_ids: list[int | None]
) -> dict[int, dict[str, dict[str, Any]]]:
    """iteration id -> step name (train, evaluate) -> outputs, of succeeded steps."""
    wanted = [i for i in iteration_ids if i is not None]
    if not wanted:
        return {}
    rows = session.execute(
        select(CampaignStep.iteration_id, CampaignStep.name, CampaignStep.outputs).where(
            CampaignStep.iteration_id.in_(wanted),
            CampaignStep.name.in_([StepName.train.value, StepName.evaluate.value]),
            CampaignStep.state == StepState.succeeded.value,
        )
    )
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for iteration_id, name, outputs in rows:
        found.setdefault(iteration_id, {})[name] = dict(outputs or {})
    return found


def _test_errors(
    run: TrainingRun, steps: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, HeadErrors], str | None]:
    """The evaluate step's errors of this run's model, or why there are none."""
    if run.campaign_id is None:
        return {}, "not a campaign run: no test split"
    trained = steps.get(StepName.train.value)
    if trained is None or trained.get("training_run_id") != run.id:
        return {}, "its iteration's train step did not keep this run"
    evaluated = steps.get(StepName.evaluate.value)
    if evaluated is None:
        return {}, "its iteration has not been evaluated"
    errors = evaluated.get("test_errors") or {}
    if not errors:
        return {}, "the campaign has no test structures"
    return {
        str(head): _head_errors(values, "n_structures")
        for head, values in errors.items()
        if isinstance(values, Mapping)
    }, None


def _validation_errors(run: TrainingRun) -> dict[str, HeadErrors]:
    heads = (run.metrics or {}).get("heads") or {}
    return {
        str(head): _head_errors(splits["validation"], "n_energies")
        for head, splits in heads.items()
        if isinstance(splits, Mapping) and isinstance(splits.get("validation"), Mapping)
    }


def _head_errors(values: Mapping[str, Any], count_key: str) -> HeadErrors:
    count = values.get(count_key)
    return HeadErrors(
        n_structures=count if isinstance(count, int) and not isinstance(count, bool) else None,
        energy_mae_mev_per_atom=_finite(values.get("energy_mae_mev_per_atom")),
        force_mae_mev_per_angstrom=_finite(values.get("force_mae_mev_per_angstrom")),
    )


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def comparison(runs: list[ComparedRun]) -> Comparison:
    """One row per head (by name), split and quantity; rows no run has a value for left out."""
    heads = {head for run in runs for head in run.heads}
    heads.update(head for run in runs for errors in run.errors.values() for head in errors)
    rows = []
    for head in sorted(heads):
        first = True
        for split in Split:
            for quantity in QUANTITIES:
                values = [_value(run, split, head, quantity) for run in runs]
                if all(value is None for value in values):
                    continue
                rows.append(
                    ComparisonRow(
                        head, split, quantity, values, _best(values, quantity), first_of_head=first
                    )
                )
                first = False
    return Comparison(runs, rows)


def _value(run: ComparedRun, split: Split, head: str, quantity: Quantity) -> float | int | None:
    errors = run.errors[split].get(head)
    value: float | int | None = None if errors is None else getattr(errors, quantity.field)
    return value


def _best(values: list[float | int | None], quantity: Quantity) -> frozenset[int]:
    """Where the lowest value is (ties: all of them); none unless two runs have a value."""
    present = [(value, k) for k, value in enumerate(values) if value is not None]
    if not quantity.lower_is_better or len(present) < 2:
        return frozenset()
    lowest = min(value for value, _ in present)
    return frozenset(k for value, k in present if value == lowest)
