"""Labeling jobs for the dashboard: filtered pages, stuck work, detail (failures: failures.py).

Pages are keyset-paginated on the job id (newest first), so a page costs the
same at job 100,000 as at job 1; every filter is an equality on an indexed
column except the message text (a substring, case-insensitive).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from interphase.dashboard.errors import DashboardInputError
from interphase.dashboard.params import optional_whole_number, text_value
from interphase.dashboard.queries.distinct import distinct_values
from interphase.dashboard.queries.job_settings import AppliedSettings, applied_settings
from interphase.dashboard.templating import as_utc
from interphase.db.models import (
    Campaign,
    Iteration,
    JobAttempt,
    JobState,
    LabelingJob,
    LevelOfTheory,
)
from interphase.labeling.jobs import JobFilter

#: Rows per page of the jobs table.
PAGE_SIZE = 50
#: A running job whose heartbeat is older than this fraction of its lease is "near expiry".
NEAR_EXPIRY_FRACTION = 0.5
#: Longest message text shown in tables (the job page shows it whole).
MESSAGE_PREVIEW_CHARS = 240


@dataclass(frozen=True)
class JobsQuery:
    """The jobs filter as the page's query parameters; :meth:`selection` is what it matches."""

    campaign: int | None = None
    iteration: int | None = None
    level: str | None = None
    engine: str | None = None
    state: JobState | None = None
    error_class: str | None = None
    message: str | None = None

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> JobsQuery:
        """From query or form values (empty means unset).

        Raises
        ------
        DashboardInputError
            For a state that is not a job state or an id that is not a number.
        """

        def text(name: str) -> str | None:
            return text_value(values.get(name), name)

        state = text("state")
        if state is not None and state not in JobState.__members__:
            raise DashboardInputError(
                f"unknown job state {state!r}; choose {', '.join(JobState.__members__)}"
            )
        return cls(
            campaign=optional_whole_number(values.get("campaign"), "campaign"),
            iteration=optional_whole_number(values.get("iteration"), "iteration"),
            level=text("level"),
            engine=text("engine"),
            state=JobState(state) if state is not None else None,
            error_class=text("error_class"),
            message=text("message"),
        )

    def params(self, **overrides: Any) -> dict[str, str]:
        """The filter as query parameters (unset ones left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(overrides)
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}

    @property
    def is_empty(self) -> bool:
        return not self.params()

    def selection(self, ids: tuple[int, ...] = ()) -> JobFilter:
        """The library's job filter for these criteria (and ``ids``, when given)."""
        return JobFilter(
            ids=ids,
            state=self.state,
            error_class=self.error_class,
            campaign=None if self.campaign is None else str(self.campaign),
            level=self.level,
            engine=self.engine,
            iteration_id=self.iteration,
            message=self.message,
        )


@dataclass(frozen=True)
class JobRow:
    """One line of the jobs table."""

    id: int
    state: JobState
    level: str
    engine: str | None
    structure_id: int
    campaign_id: int | None
    campaign: str | None
    iteration_id: int | None
    iteration_index: int | None
    attempts: int
    error_class: str | None
    message: str | None
    worker: str | None
    updated_at: datetime | None
    wall_time_s: float | None = None  # the latest attempt's; while it runs, so far
    wall_time_running: bool = False  # the latest attempt has not finished


@dataclass(frozen=True)
class JobPage:
    """A page of jobs, newest first, with the cursors of its neighbours."""

    rows: list[JobRow]
    total: int
    newer_cursor: int | None  # ?after=<id> shows the newer page
    older_cursor: int | None  # ?before=<id> shows the older page

    @property
    def ids(self) -> list[int]:
        return [row.id for row in self.rows]


def count_jobs(session: Session, selection: JobFilter) -> int:
    return int(session.scalar(selection.select_columns(func.count(LabelingJob.id))) or 0)


def job_page(
    session: Session,
    selection: JobFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> JobPage:
    """Jobs matching ``selection``, newest first: older than ``before`` or newer than ``after``."""
    columns = (
        LabelingJob.id,
        LabelingJob.state,
        LevelOfTheory.name,
        LevelOfTheory.engine,
        LabelingJob.structure_id,
        LabelingJob.campaign_id,
        Campaign.name,
        LabelingJob.iteration_id,
        Iteration.index,
        LabelingJob.attempt,
        LabelingJob.error_class,
        func.substr(LabelingJob.error_message, 1, MESSAGE_PREVIEW_CHARS),
        LabelingJob.worker,
        LabelingJob.updated_at,
    )
    rows_query = (
        selection.select_columns(*columns)
        .outerjoin(Campaign, LabelingJob.campaign_id == Campaign.id)
        .outerjoin(Iteration, LabelingJob.iteration_id == Iteration.id)
    )
    if after is not None:
        found = session.execute(
            rows_query.where(LabelingJob.id > after).order_by(LabelingJob.id).limit(size)
        ).all()[::-1]
    else:
        if before is not None:
            rows_query = rows_query.where(LabelingJob.id < before)
        found = session.execute(rows_query.order_by(LabelingJob.id.desc()).limit(size)).all()
    rows = _with_wall_times(session, [JobRow(*row) for row in found])
    newer = older = None
    if rows:
        if _exists(session, selection, LabelingJob.id > rows[0].id):
            newer = rows[0].id
        if _exists(session, selection, LabelingJob.id < rows[-1].id):
            older = rows[-1].id
    return JobPage(rows, count_jobs(session, selection), newer, older)


def _with_wall_times(session: Session, rows: list[JobRow]) -> list[JobRow]:
    """``rows`` with the wall time of each job's latest attempt (elapsed, if it runs)."""
    latest: dict[int, tuple[int, float | None, datetime | None, datetime | None]] = {}
    attempts = select(
        JobAttempt.job_id,
        JobAttempt.number,
        JobAttempt.wall_time_s,
        JobAttempt.started_at,
        JobAttempt.finished_at,
    ).where(JobAttempt.job_id.in_([row.id for row in rows]))
    for job_id, number, wall_s, started, finished in session.execute(attempts):
        if job_id not in latest or number > latest[job_id][0]:
            latest[job_id] = (number, wall_s, as_utc(started), finished)
    now = datetime.now(UTC)
    timed = []
    for row in rows:
        if row.id not in latest:
            timed.append(row)
            continue
        _, wall_s, began, finished = latest[row.id]
        running = wall_s is None and finished is None and row.state is JobState.running
        if running and began is not None:
            wall_s = (now - began).total_seconds()
        timed.append(replace(row, wall_time_s=wall_s, wall_time_running=running))
    return timed


def _exists(session: Session, selection: JobFilter, condition: ColumnElement[bool]) -> bool:
    first = selection.select_columns(LabelingJob.id).where(condition).limit(1)
    return session.scalar(first) is not None


def state_counts(session: Session, selection: JobFilter) -> dict[JobState, int]:
    """Jobs per state under the filter (its own state criterion left out)."""
    without_state = replace(selection, state=None)
    counts: dict[JobState, int] = {
        state: int(n)
        for state, n in session.execute(
            without_state.select_columns(LabelingJob.state, func.count()).group_by(
                LabelingJob.state
            )
        )
    }
    return {state: int(counts.get(state, 0)) for state in JobState}


@dataclass(frozen=True)
class StuckJob:
    """A running job whose worker has not renewed its lease for a while."""

    id: int
    worker: str | None
    level: str
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    expired: bool


def stuck_jobs(session: Session, now: datetime | None = None, limit: int = 1000) -> list[StuckJob]:
    """Running jobs whose lease expired, or whose last renewal is over half a lease ago.

    A healthy worker renews its lease several times per lease length, so more
    than half a lease without a heartbeat means its worker is likely gone; an
    expired lease is requeued by the next worker that looks.
    """
    now = now or datetime.now(UTC)
    rows = session.execute(
        select(
            LabelingJob.id,
            LabelingJob.worker,
            LevelOfTheory.name,
            LabelingJob.lease_expires_at,
            LabelingJob.heartbeat_at,
        )
        .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
        .where(LabelingJob.state == JobState.running)
        .order_by(LabelingJob.lease_expires_at)
        .limit(limit)
    ).all()
    stuck = []
    for job_id, worker, level, lease, heartbeat in rows:
        lease, heartbeat = as_utc(lease), as_utc(heartbeat)
        expired = lease is None or lease <= now
        near = False
        if not expired and lease is not None and heartbeat is not None:
            lease_s = (lease - heartbeat).total_seconds()
            near = (now - heartbeat).total_seconds() > NEAR_EXPIRY_FRACTION * lease_s
        if expired or near:
            stuck.append(StuckJob(job_id, worker, level, lease, heartbeat, expired))
    return stuck


@dataclass(frozen=True)
class FilterChoices:
    """The values the filter's selects offer."""

    campaigns: list[tuple[int, str]]
    iterations: list[tuple[int, str]]  # (id, "campaign #index")
    levels: list[str]
    engines: list[str]
    error_classes: list[str]


def filter_choices(session: Session) -> FilterChoices:
    campaigns = [(int(i), n) for i, n in session.execute(select(Campaign.id, Campaign.name))]
    iterations = [
        (int(i), f"{name} #{index}")
        for i, name, index in session.execute(
            select(Iteration.id, Campaign.name, Iteration.index)
            .join(Campaign, Iteration.campaign_id == Campaign.id)
            .order_by(Campaign.name, Iteration.index)
            .limit(500)
        )
    ]
    levels = session.execute(
        select(LevelOfTheory.name, LevelOfTheory.engine).order_by(LevelOfTheory.name)
    ).all()
    error_classes = distinct_values(session, LabelingJob.error_class)
    return FilterChoices(
        campaigns=sorted(campaigns, key=lambda c: c[1]),
        iterations=iterations,
        levels=[name for name, _ in levels],
        engines=sorted({engine for _, engine in levels if engine}),
        error_classes=[e for e in error_classes if e],
    )


@dataclass(frozen=True)
class JobDetail:
    """A job with its level, campaign, iteration and every attempt."""

    job: LabelingJob
    level: LevelOfTheory
    campaign: str | None
    iteration_index: int | None
    attempts: list[JobAttempt]

    @property
    def is_live(self) -> bool:
        return self.job.state in (JobState.pending, JobState.running)

    @property
    def applied(self) -> AppliedSettings:
        """The settings the job runs with (its own and the defaults it leaves in place)."""
        return applied_settings(self.level.engine, self.job.settings)


def job_detail(session: Session, job_id: int) -> JobDetail | None:
    job = session.get(LabelingJob, job_id)
    if job is None:
        return None
    campaign = session.get(Campaign, job.campaign_id) if job.campaign_id else None
    iteration = session.get(Iteration, job.iteration_id) if job.iteration_id else None
    attempts = list(
        session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
        )
    )
    return JobDetail(
        job,
        job.level,
        campaign.name if campaign else None,
        iteration.index if iteration else None,
        attempts,
    )
