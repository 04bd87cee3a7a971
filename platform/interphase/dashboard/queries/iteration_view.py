"""One iteration for its page: steps, structures, GPs, picks, synthetic labels, training.

The step rows are live while the campaign runs (a step is ``running`` until
its outputs commit); steps not started yet are listed as ``waiting``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.loop import STEP_ORDER, read_outputs
from interphase.campaign.progress import StepProgress
from interphase.campaign.steps import fit
from interphase.dashboard.queries.campaign_view import CampaignHeader, campaign_header
from interphase.dashboard.queries.models import RunDetail, run_detail
from interphase.dashboard.queries.scores import Pick, ScoreDistribution, picks, score_distribution
from interphase.dashboard.templating import as_utc
from interphase.db.models import (
    Campaign,
    CampaignStep,
    CampaignStructure,
    GPRModel,
    Iteration,
    JobState,
    LabelingJob,
    LevelOfTheory,
    Structure,
    SyntheticLabel,
    TrainingRun,
)

#: Outputs of these steps hold long id lists; the page needs only the note about them.
WAITING = "waiting"


@dataclass(frozen=True)
class StepLine:
    name: str
    state: str  # running / succeeded / failed, or "waiting" (not started)
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    compute_seconds: float | None
    note: str
    error: str | None
    #: The newest progress report (a running step's count; where a failed one stopped).
    progress: StepProgress | None = None
    progress_at: datetime | None = None

    @property
    def elapsed_s(self) -> float | None:
        """A running step's seconds so far (None for any other state)."""
        started = as_utc(self.started_at)
        if self.state != "running" or started is None:
            return None
        return max((datetime.now(UTC) - started).total_seconds(), 0.0)


@dataclass(frozen=True)
class GPLine:
    """One GP of the iteration: its subset, size, hyperparameters and held-out errors."""

    id: int
    level: str
    subset_key: str
    n_labels: int
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    n_synthetic: int
    fitted_by: str  # the step that fitted it: "fit", or "refit" after the selection's labels


@dataclass(frozen=True)
class IterationView:
    header: CampaignHeader
    id: int
    index: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepLine]
    structures_by_generator: dict[str, int]
    jobs: dict[str, dict[str, int]]  # level -> state -> count
    gps: list[GPLine]
    picks: list[Pick]
    synthetic_by_level: dict[str, int]
    scores: ScoreDistribution
    training: list[RunDetail]
    previous_index: int | None
    next_index: int | None

    @property
    def is_live(self) -> bool:
        return self.header.is_running and self.status == "running"


def find_iteration(session: Session, campaign_id: int, index: int) -> Iteration | None:
    return session.scalar(
        select(Iteration).where(Iteration.campaign_id == campaign_id, Iteration.index == index)
    )


def iteration_view(
    session: Session, campaign_id: int, index: int, *, with_charts: bool = True
) -> IterationView | None:
    """The iteration's page data; without ``with_charts`` (the polled part) no scores or runs."""
    campaign = session.get(Campaign, campaign_id)
    iteration = None if campaign is None else find_iteration(session, campaign_id, index)
    if campaign is None or iteration is None:
        return None
    indexes = session.scalars(
        select(Iteration.index)
        .where(Iteration.campaign_id == campaign_id)
        .order_by(Iteration.index)
    ).all()
    runs = (
        []
        if not with_charts
        else session.scalars(
            select(TrainingRun.id)
            .where(TrainingRun.iteration_id == iteration.id)
            .order_by(TrainingRun.id)
        ).all()
    )
    return IterationView(
        header=campaign_header(session, campaign),
        id=iteration.id,
        index=iteration.index,
        status=iteration.status,
        started_at=iteration.started_at,
        finished_at=iteration.finished_at,
        steps=step_lines(session, campaign_id, index),
        structures_by_generator=_structures_by_generator(session, iteration.id),
        jobs=_jobs_by_level(session, iteration.id),
        gps=_gps(session, iteration.id, _fitted_by(session, campaign_id, index)),
        picks=picks(session, iteration.id),
        synthetic_by_level=_synthetic_by_level(session, iteration.id),
        scores=score_distribution(session, [iteration.id], with_median=True)
        if with_charts
        else ScoreDistribution(),
        training=[d for d in (run_detail(session, run_id) for run_id in runs) if d is not None],
        previous_index=max((i for i in indexes if i < index), default=None),
        next_index=min((i for i in indexes if i > index), default=None),
    )


def step_lines(session: Session, campaign_id: int, index: int) -> list[StepLine]:
    """Every step of the iteration in order: recorded ones as they are, the rest waiting."""
    rows = {
        row.name: row
        for row in session.scalars(
            select(CampaignStep).where(
                CampaignStep.campaign_id == campaign_id, CampaignStep.iteration_index == index
            )
        )
    }
    lines = []
    for step in STEP_ORDER:
        row = rows.get(step.value)
        if row is None:
            lines.append(StepLine(step.value, WAITING, 0, None, None, None, None, "", None))
            continue
        note = read_outputs(step, row.outputs).note() if row.state == "succeeded" else ""
        lines.append(
            StepLine(
                name=row.name,
                state=row.state,
                attempts=row.attempts,
                started_at=row.started_at,
                finished_at=row.finished_at,
                seconds=row.seconds,
                compute_seconds=row.compute_seconds,
                note=note,
                error=row.error,
                progress=StepProgress.from_row(row.progress),
                progress_at=row.progress_at,
            )
        )
    return lines


def _structures_by_generator(session: Session, iteration_id: int) -> dict[str, int]:
    """The structures that joined the campaign in this iteration, by generator."""
    iteration = session.get_one(Iteration, iteration_id)
    first = (
        select(CampaignStructure.structure_id)
        .where(CampaignStructure.campaign_id == iteration.campaign_id)
        .group_by(CampaignStructure.structure_id)
        .having(func.min(CampaignStructure.iteration_index) == iteration.index)
    )
    rows = session.execute(
        select(Structure.generator, func.count(Structure.id))
        .where(Structure.id.in_(first))
        .group_by(Structure.generator)
        .order_by(Structure.generator)
    )
    return {generator: int(n) for generator, n in rows}


def _jobs_by_level(session: Session, iteration_id: int) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for level, state, n in session.execute(
        select(LevelOfTheory.name, LabelingJob.state, func.count(LabelingJob.id))
        .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
        .where(LabelingJob.iteration_id == iteration_id)
        .group_by(LevelOfTheory.name, LabelingJob.state)
        .order_by(LevelOfTheory.name)
    ):
        found.setdefault(level, {})[JobState(state).value] = int(n)
    return found


def _synthetic_counts(session: Session, iteration_id: int) -> dict[int, int]:
    rows = session.execute(
        select(SyntheticLabel.gpr_model_id, func.count(SyntheticLabel.id))
        .join(GPRModel, SyntheticLabel.gpr_model_id == GPRModel.id)
        .where(GPRModel.iteration_id == iteration_id)
        .group_by(SyntheticLabel.gpr_model_id)
    )
    return {model_id: int(n) for model_id, n in rows}


def _fitted_by(session: Session, campaign_id: int, index: int) -> dict[int, str]:
    """GP id -> the step (fit or refit) whose outputs list it."""
    found: dict[int, str] = {}
    for name, outputs in session.execute(
        select(CampaignStep.name, CampaignStep.outputs).where(
            CampaignStep.campaign_id == campaign_id,
            CampaignStep.iteration_index == index,
            CampaignStep.name.in_(["fit", "refit"]),
        )
    ):
        for fits in fit.Outputs.model_validate(outputs or {}).fitted.values():
            for fitted in fits:
                found[fitted.gpr_model_id] = name
    return found


def _gps(session: Session, iteration_id: int, fitted_by: dict[int, str]) -> list[GPLine]:
    synthetic = _synthetic_counts(session, iteration_id)
    rows = session.execute(
        select(
            GPRModel.id,
            LevelOfTheory.name,
            GPRModel.subset_key,
            func.length(GPRModel.training_label_ids),
            GPRModel.hyperparameters,
            GPRModel.metrics,
        )
        .join(LevelOfTheory, GPRModel.level_id == LevelOfTheory.id)
        .where(GPRModel.iteration_id == iteration_id)
        .order_by(LevelOfTheory.name, GPRModel.subset_key, GPRModel.id)
    )
    return [
        GPLine(
            id=model_id,
            level=level,
            subset_key=subset,
            n_labels=int(n_bytes or 0) // 8,  # little-endian int64 ids
            hyperparameters=dict(hyper or {}),
            metrics=dict(metrics or {}),
            n_synthetic=synthetic.get(model_id, 0),
            fitted_by=fitted_by.get(model_id, ""),
        )
        for model_id, level, subset, n_bytes, hyper, metrics in rows
    ]


def _synthetic_by_level(session: Session, iteration_id: int) -> dict[str, int]:
    rows = session.execute(
        select(LevelOfTheory.name, func.count(SyntheticLabel.id))
        .join(GPRModel, SyntheticLabel.gpr_model_id == GPRModel.id)
        .join(LevelOfTheory, SyntheticLabel.level_id == LevelOfTheory.id)
        .where(GPRModel.iteration_id == iteration_id)
        .group_by(LevelOfTheory.name)
        .order_by(LevelOfTheory.name)
    )
    return {level: int(n) for level, n in rows}
