"""Campaign, iteration and step rows: what has run, what it produced, what is next.

A step's row is written as ``succeeded`` in the same transaction as the step's
outputs (:func:`complete_step`), so after a crash a step is either done with
everything it made, or not done and run again.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.config import CampaignConfig
from interphase.db import membership
from interphase.db.levels import get_or_create_level
from interphase.db.models import (
    Campaign,
    CampaignState,
    CampaignStep,
    Iteration,
    LevelOfTheory,
    StepState,
    utcnow,
)
from interphase.labeling.levels import LevelSpec


class StepName(enum.StrEnum):
    """A step's name as stored (``campaign_step.name``); the loop's order is
    :data:`interphase.campaign.loop.STEP_ORDER`."""

    generate = "generate"
    label = "label"
    fit = "fit"
    select = "select"
    refit = "refit"
    augment = "augment"
    train = "train"
    explore = "explore"
    evaluate = "evaluate"
    summary = "summary"


class CampaignNotFoundError(LookupError):
    """No campaign of that name."""


class CampaignExistsError(ValueError):
    """A campaign of that name exists already (with another configuration)."""


class LevelMismatchError(ValueError):
    """A level in the database is defined differently from the campaign's spec."""


def derived_seed(seed: int, *parts: object) -> int:
    """A seed for one part of a campaign (iteration, step, generator), stable across runs."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def find_campaign(session: Session, name: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.name == name))
    if campaign is None:
        known = session.scalars(select(Campaign.name).order_by(Campaign.id)).all()
        hint = f"known: {', '.join(known[-5:])}" if known else "none recorded yet"
        raise CampaignNotFoundError(f"no campaign named {name!r} ({hint})")
    return campaign


def ensure_level(session: Session, spec: LevelSpec) -> LevelOfTheory:
    """The level row of ``spec``, created when missing; refuses a differing definition."""
    row = get_or_create_level(session, spec.name)
    if row.engine is None:  # a bare level (not a default): fill it from the spec
        row.engine, row.method, row.basis = spec.engine, spec.method, spec.basis
        row.periodic, row.settings = spec.periodic, dict(spec.settings)
        row.reference_energies_hartree = dict(spec.reference_energies_hartree)
    elif (row.engine, row.method, row.basis) != (spec.engine, spec.method, spec.basis):
        raise LevelMismatchError(
            f"level {spec.name!r} is {row.engine}/{row.method}/{row.basis} in the database but "
            f"{spec.engine}/{spec.method}/{spec.basis} in the campaign file; give the new "
            "definition another level name"
        )
    return row


def create_campaign(session: Session, config: CampaignConfig) -> Campaign:
    """Record a new campaign and its levels; refuses an existing name."""
    if session.scalar(select(Campaign.id).where(Campaign.name == config.name)) is not None:
        raise CampaignExistsError(
            f"a campaign named {config.name!r} exists already: continue it with "
            f"`interphase campaign resume {config.name}` or choose another --name"
        )
    for route in config.routing:
        ensure_level(session, config.level_spec(route.level))
    campaign = Campaign(
        name=config.name,
        config=config.model_dump(mode="json"),
        seed=config.seed,
        state=CampaignState.created.value,
    )
    session.add(campaign)
    session.flush()
    return campaign


def campaign_config(campaign: Campaign) -> CampaignConfig:
    return CampaignConfig.model_validate(campaign.config)


def get_iteration(session: Session, campaign_id: int, index: int) -> Iteration:
    """The iteration ``index`` of a campaign, created when it does not exist yet."""
    iteration = session.scalar(
        select(Iteration).where(Iteration.campaign_id == campaign_id, Iteration.index == index)
    )
    if iteration is None:
        iteration = Iteration(campaign_id=campaign_id, index=index, status="running")
        session.add(iteration)
        session.flush()
    return iteration


def steps_of(session: Session, campaign_id: int) -> list[CampaignStep]:
    return list(
        session.scalars(
            select(CampaignStep)
            .where(CampaignStep.campaign_id == campaign_id)
            .order_by(CampaignStep.iteration_index, CampaignStep.id)
        )
    )


def step_row(session: Session, campaign_id: int, index: int, name: StepName) -> CampaignStep | None:
    return session.scalar(
        select(CampaignStep).where(
            CampaignStep.campaign_id == campaign_id,
            CampaignStep.iteration_index == index,
            CampaignStep.name == name.value,
        )
    )


def step_outputs(session: Session, campaign_id: int, index: int, name: StepName) -> dict[str, Any]:
    """The outputs of a succeeded step as stored, JSON (empty when it has not succeeded).

    The steps read each other's outputs typed, through :mod:`interphase.campaign.loop`.
    """
    row = step_row(session, campaign_id, index, name)
    return dict(row.outputs) if row is not None and row.state == StepState.succeeded else {}


def begin_step(session: Session, campaign_id: int, index: int, name: StepName) -> CampaignStep:
    """Mark a step running (again, after a crash: its attempt count goes up)."""
    iteration = get_iteration(session, campaign_id, index)
    row = step_row(session, campaign_id, index, name)
    if row is None:
        row = CampaignStep(
            campaign_id=campaign_id,
            iteration_id=iteration.id,
            iteration_index=index,
            name=name.value,
            state=StepState.running.value,
            attempts=1,
            outputs={},
        )
        session.add(row)
    else:
        row.attempts += 1
        row.state, row.error, row.started_at = StepState.running.value, None, utcnow()
        row.progress, row.progress_at = None, None  # the last attempt's count is stale
    session.flush()
    return row


def complete_step(
    session: Session,
    campaign_id: int,
    index: int,
    name: StepName,
    outputs: dict[str, Any],
    *,
    seconds: float,
    compute_seconds: float,
) -> None:
    """Record a step as succeeded with its outputs — in the caller's (the outputs') transaction."""
    row = step_row(session, campaign_id, index, name)
    if row is None:
        row = begin_step(session, campaign_id, index, name)
    row.state = StepState.succeeded.value
    row.outputs = _json(outputs)
    row.finished_at = utcnow()
    row.seconds, row.compute_seconds = seconds, min(compute_seconds, seconds)
    campaign = session.get_one(Campaign, campaign_id)
    campaign.updated_at = utcnow()


def fail_step(session: Session, campaign_id: int, index: int, name: StepName, error: str) -> None:
    row = step_row(session, campaign_id, index, name) or begin_step(
        session, campaign_id, index, name
    )
    row.state, row.error, row.finished_at = StepState.failed.value, error, utcnow()


def _json(value: Any) -> Any:
    """Outputs as plain JSON (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def held_out_ids(session: Session, campaign_id: int) -> set[int]:
    """The campaign's fixed test split."""
    return membership.test_ids(session, campaign_id)


def level_ids(session: Session, names: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(LevelOfTheory.name, LevelOfTheory.id).where(LevelOfTheory.name.in_(names))
    ).all()
    return {name: int(level_id) for name, level_id in rows}
