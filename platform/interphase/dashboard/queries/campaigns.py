"""Campaigns for the dashboard: the list (state, stop reason, iterations, last activity).

A campaign's state is ``created``, ``running``, ``stopped`` or ``finished``
(see :mod:`interphase.campaign.run`); a stopped or finished one says why in
``stop_reason`` and, in words, in ``stop_detail["message"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from interphase.campaign.progress import StepProgress
from interphase.dashboard.templating import as_utc
from interphase.db.models import (
    Campaign,
    CampaignStep,
    Iteration,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    StepState,
    Structure,
    TrainingRun,
)


@dataclass(frozen=True)
class CurrentStep:
    """The step a running campaign is in, and how far it is (when it reported)."""

    iteration_index: int
    name: str
    started_at: datetime
    attempts: int
    progress: StepProgress | None = None
    progress_at: datetime | None = None

    @property
    def last_activity(self) -> datetime:
        """When it started or last reported progress, whichever is later."""
        return latest_moment(self.started_at, self.progress_at)


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    state: str
    stop_reason: str | None
    stop_message: str | None
    stop_requested: bool
    iterations: int  # recorded (started)
    iterations_finished: int
    current_step: CurrentStep | None
    created_at: datetime
    last_activity: datetime

    @property
    def is_running(self) -> bool:
        return self.state == "running"


def latest_moment(*moments: datetime | None) -> datetime:
    """The latest of the moments given (as aware UTC); at least one must be set."""
    return max(m for m in (as_utc(x) for x in moments) if m is not None)


def running_steps(session: Session, campaign_ids: list[int]) -> dict[int, CurrentStep]:
    """The running step of each campaign that has one (the newest, should there be several)."""
    if not campaign_ids:
        return {}
    found: dict[int, CurrentStep] = {}
    for campaign_id, index, name, started, attempts, progress, progress_at in session.execute(
        select(
            CampaignStep.campaign_id,
            CampaignStep.iteration_index,
            CampaignStep.name,
            CampaignStep.started_at,
            CampaignStep.attempts,
            CampaignStep.progress,
            CampaignStep.progress_at,
        )
        .where(
            CampaignStep.campaign_id.in_(campaign_ids),
            CampaignStep.state == StepState.running.value,
        )
        .order_by(CampaignStep.id)
    ):
        found[campaign_id] = CurrentStep(
            index, name, started, attempts, StepProgress.from_row(progress), progress_at
        )
    return found


def campaign_rows(session: Session) -> list[CampaignRow]:
    """Every campaign, most recently active first.

    Last activity is the latest of the campaign's own update, an iteration or
    step starting or finishing, a step reporting progress (an epoch trained, a
    job done) and a change to one of its labeling jobs.
    """
    campaigns = session.scalars(select(Campaign).order_by(Campaign.id)).all()
    ids = [c.id for c in campaigns]
    iterations = {
        campaign_id: (int(n), int(done or 0), started, finished)
        for campaign_id, n, done, started, finished in session.execute(
            select(
                Iteration.campaign_id,
                func.count(Iteration.id),
                func.sum(case((Iteration.status == "succeeded", 1), else_=0)),
                func.max(Iteration.started_at),
                func.max(Iteration.finished_at),
            ).group_by(Iteration.campaign_id)
        )
    }
    steps = {
        campaign_id: (started, finished, progressed)
        for campaign_id, started, finished, progressed in session.execute(
            select(
                CampaignStep.campaign_id,
                func.max(CampaignStep.started_at),
                func.max(CampaignStep.finished_at),
                func.max(CampaignStep.progress_at),
            ).group_by(CampaignStep.campaign_id)
        )
    }
    # One index lookup per campaign (ix_labeling_job_campaign_updated), not a scan of every job.
    job_activity = {
        campaign_id: session.scalar(
            select(func.max(LabelingJob.updated_at)).where(LabelingJob.campaign_id == campaign_id)
        )
        for campaign_id in ids
    }
    current = running_steps(session, ids)
    rows = []
    for c in campaigns:
        n, done, started, finished = iterations.get(c.id, (0, 0, None, None))
        step_started, step_finished, step_progressed = steps.get(c.id, (None, None, None))
        rows.append(
            CampaignRow(
                id=c.id,
                name=c.name,
                state=c.state,
                stop_reason=c.stop_reason,
                stop_message=(c.stop_detail or {}).get("message"),
                stop_requested=bool(c.stop_requested),
                iterations=n,
                iterations_finished=done,
                current_step=current.get(c.id) if c.state == "running" else None,
                created_at=c.created_at,
                last_activity=latest_moment(
                    c.created_at,
                    c.updated_at,
                    started,
                    finished,
                    step_started,
                    step_finished,
                    step_progressed,
                    job_activity.get(c.id),
                ),
            )
        )
    return sorted(rows, key=lambda row: row.last_activity, reverse=True)


@dataclass(frozen=True)
class Overview:
    """Totals for the landing page: structures, labels per level, jobs per state, runs."""

    structures: int
    labels_per_level: list[tuple[str, int]]
    jobs_per_state: dict[str, int]
    training_runs: int


def overview(session: Session) -> Overview:
    labels = session.execute(
        select(LevelOfTheory.name, func.count(Label.id))
        .join(Label, Label.level_id == LevelOfTheory.id)
        .group_by(LevelOfTheory.name)
        .order_by(LevelOfTheory.name)
    ).all()
    states = dict(
        session.execute(select(LabelingJob.state, func.count()).group_by(LabelingJob.state)).all()
    )
    return Overview(
        structures=int(session.scalar(select(func.count(Structure.id))) or 0),
        labels_per_level=[(name, int(n)) for name, n in labels],
        jobs_per_state={state.value: int(states.get(state, 0)) for state in JobState},
        training_runs=int(session.scalar(select(func.count(TrainingRun.id))) or 0),
    )
