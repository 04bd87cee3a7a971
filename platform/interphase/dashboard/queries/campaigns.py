"""Campaigns for the dashboard: the list with iterations and last activity.

The rich campaign and iteration views (uncertainty per iteration, heads,
learning curves) build on the campaign tables of the campaign work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.dashboard.templating import as_utc
from interphase.db.models import (
    Campaign,
    Iteration,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
    TrainingRun,
)


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    iterations: int
    latest_iteration_status: str | None
    created_at: datetime
    last_activity: datetime


def campaign_rows(session: Session) -> list[CampaignRow]:
    """Every campaign, most recently active first.

    Last activity is the latest of its creation, an iteration starting or
    finishing, and a change to one of its labeling jobs.
    """
    campaigns = session.execute(
        select(Campaign.id, Campaign.name, Campaign.created_at).order_by(Campaign.id)
    ).all()
    iterations = {
        campaign_id: (int(n), started, finished)
        for campaign_id, n, started, finished in session.execute(
            select(
                Iteration.campaign_id,
                func.count(Iteration.id),
                func.max(Iteration.started_at),
                func.max(Iteration.finished_at),
            ).group_by(Iteration.campaign_id)
        )
    }
    latest_status: dict[int, str] = {}
    for campaign_id, status in session.execute(
        select(Iteration.campaign_id, Iteration.status).order_by(Iteration.index)
    ):
        latest_status[campaign_id] = status
    # One index lookup per campaign (ix_labeling_job_campaign_updated), not a scan of every job.
    job_activity = {
        campaign_id: session.scalar(
            select(func.max(LabelingJob.updated_at)).where(LabelingJob.campaign_id == campaign_id)
        )
        for campaign_id, _, _ in campaigns
    }
    rows = []
    for campaign_id, name, created in campaigns:
        n, started, finished = iterations.get(campaign_id, (0, None, None))
        moments = [as_utc(m) for m in (created, started, finished, job_activity.get(campaign_id))]
        rows.append(
            CampaignRow(
                id=campaign_id,
                name=name,
                iterations=n,
                latest_iteration_status=latest_status.get(campaign_id),
                created_at=created,
                last_activity=max(m for m in moments if m is not None),
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
