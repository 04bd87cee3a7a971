"""Finding, resubmitting and draining labeling jobs (what ``interphase jobs`` calls).

Resubmission never rewrites history: a resubmitted job goes back to pending
with its changed settings, and its next claim adds a new
:class:`~interphase.db.models.JobAttempt`; every earlier attempt keeps its own
settings, outcome, error class and log tail.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from interphase.db.api import (
    create_jobs,
    get_or_create_level,
    known_level_id,
    unlabeled_structure_ids,
)
from interphase.db.models import (
    Campaign,
    JobReason,
    JobState,
    LabelingJob,
    LevelOfTheory,
    Structure,
)
from interphase.db.session import transaction
from interphase.labeling.engines import get_engine
from interphase.labeling.queue import DrainReport, WorkerOptions, run_pending_jobs

#: States a job may be resubmitted from (pending/running jobs are still in play).
RESUBMITTABLE = (JobState.failed, JobState.cancelled)


class JobSelectionError(ValueError):
    """A job selection or a ``--set`` assignment is malformed or matches wrongly."""


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a command acts on (all given criteria must hold)."""

    ids: tuple[int, ...] = ()
    state: JobState | None = None
    error_class: str | None = None
    campaign: str | None = None
    level: str | None = None
    engine: str | None = None

    def query(self) -> Select[LabelingJob]:
        """The SELECT of matching jobs, oldest first."""
        query = select(LabelingJob).join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
        if self.ids:
            query = query.where(LabelingJob.id.in_(self.ids))
        if self.state is not None:
            query = query.where(LabelingJob.state == self.state)
        if self.error_class is not None:
            query = query.where(LabelingJob.error_class == self.error_class)
        if self.level is not None:
            query = query.where(LevelOfTheory.name == self.level)
        if self.engine is not None:
            query = query.where(LevelOfTheory.engine == self.engine)
        if self.campaign is not None:
            by = _campaign_match(self.campaign)
            query = query.where(LabelingJob.campaign_id.in_(select(Campaign.id).where(by)))
        return query.order_by(LabelingJob.id)


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["max_iterations=200", "density_fit=false"]`` → settings changes.

    Values are read as JSON when they parse (numbers, true/false, null, lists,
    objects) and kept as strings otherwise.
    """
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise JobSelectionError(f"--set expects key=value, got {assignment!r}")
        try:
            changes[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key.strip()] = raw
    return changes


def resubmit_jobs(
    session: Session, selection: JobFilter, changes: dict[str, Any] | None = None
) -> list[int]:
    """Put matching failed/cancelled jobs back to pending with ``changes`` merged in.

    Raises
    ------
    JobSelectionError
        When explicit ids include a job that is not failed or cancelled, or
        when nothing matches.
    """
    jobs = session.scalars(selection.query().with_for_update()).all()
    if selection.ids:
        missing = set(selection.ids) - {job.id for job in jobs}
        if missing:
            raise JobSelectionError(f"no jobs with ids {sorted(missing)} match the selection")
        busy = [f"{job.id} ({job.state})" for job in jobs if job.state not in RESUBMITTABLE]
        if busy:
            raise JobSelectionError(
                f"only failed or cancelled jobs can be resubmitted; not: {', '.join(busy)}"
            )
    jobs = [job for job in jobs if job.state in RESUBMITTABLE]
    if not jobs:
        raise JobSelectionError("no failed or cancelled job matches the selection")
    for job in jobs:
        job.settings = {**job.settings, **(changes or {})}
        job.state = JobState.pending
        job.requeued_by = "resubmit"
        job.lease_expires_at = None
    return [job.id for job in jobs]


@dataclass(frozen=True)
class QueuedJobs:
    """What :func:`queue_labeling_jobs` did."""

    job_ids: list[int]
    #: Structures left out because the level does not treat them ("molecules" at a
    #: periodic level, "periodic cells" where the engine has no periodic code).
    skipped: int = 0
    skipped_kind: str = ""


def queue_labeling_jobs(
    session: Session,
    level: str,
    *,
    structure_ids: Sequence[int] = (),
    generator: str | None = None,
    campaign: str | None = None,
) -> QueuedJobs:
    """Initial labeling jobs at ``level`` for structures with no label or job there yet.

    Structures are the given ids, or every structure (of a generator and/or a
    campaign, by name or id). A periodic level (PBE-D3) takes periodic cells
    only; a level whose engine cannot treat cells takes molecules only. The level
    is created from the defaults when it is one of them; any other unknown name
    is refused.
    """
    known_level_id(session, level)  # refuses an unknown, non-default level
    if structure_ids:
        found = set(session.scalars(select(Structure.id).where(Structure.id.in_(structure_ids))))
        unknown = sorted(set(structure_ids) - found)
        if unknown:
            raise JobSelectionError(f"no structures with ids {unknown[:10]}")
    campaign_id = _campaign_id(session, campaign) if campaign is not None else None
    row = get_or_create_level(session, level)
    wanted = set(structure_ids)

    def unlabeled(periodic: bool | None = None) -> list[int]:
        ids = unlabeled_structure_ids(
            session, row.id, generator=generator, campaign_id=campaign_id, periodic=periodic
        )
        return [i for i in ids if i in wanted] if wanted else ids

    periodic: bool | None = None  # which structures the level treats (None: all)
    if row.periodic:
        periodic = True
    elif row.engine is not None and not get_engine(row.engine).capabilities.periodic:
        periodic = False
    kept = unlabeled(periodic)
    skipped = 0 if periodic is None else len(unlabeled()) - len(kept)
    skipped_kind = "" if periodic is None else ("molecules" if periodic else "periodic cells")
    jobs = create_jobs(session, kept, row, reason=JobReason.initial, campaign_id=campaign_id)
    return QueuedJobs([job.id for job in jobs], skipped, skipped_kind)


def _campaign_match(campaign: str) -> ColumnElement[bool]:
    """A campaign by id (digits) or by name."""
    return Campaign.id == int(campaign) if campaign.isdigit() else Campaign.name == campaign


def _campaign_id(session: Session, campaign: str) -> int:
    found = session.scalar(select(Campaign.id).where(_campaign_match(campaign)))
    if found is None:
        raise JobSelectionError(f"no campaign {campaign!r}; `interphase status` lists them")
    return int(found)


def count_open(url: str | None, *, engine: str | None = None, level_id: int | None = None) -> int:
    """Pending plus running jobs (optionally of one engine or level)."""
    with transaction(url) as session:
        query = (
            select(func.count())
            .select_from(LabelingJob)
            .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
            .where(LabelingJob.state.in_([JobState.pending, JobState.running]))
        )
        if engine is not None:
            query = query.where(LevelOfTheory.engine == engine)
        if level_id is not None:
            query = query.where(LabelingJob.level_id == level_id)
        return int(session.scalar(query) or 0)


def _worker_main(
    url: str | None, engine: str | None, level_id: int | None, options: WorkerOptions
) -> None:
    run_pending_jobs(url, engine=engine, level_id=level_id, options=options)


def run_workers(
    url: str | None,
    n_workers: int,
    *,
    engine: str | None = None,
    level_id: int | None = None,
    options: WorkerOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    poll_s: float = 0.5,
) -> DrainReport | None:
    """Drain the queue with ``n_workers`` worker processes (or this process when 1).

    ``progress(done, total)`` is called as jobs finish. Returns the drain report
    for a single in-process worker; with several workers the outcome is in the
    database (``interphase status`` / ``jobs list``).
    """
    options = options or WorkerOptions()
    total = count_open(url, engine=engine, level_id=level_id)
    if n_workers <= 1:

        def report_progress(report: DrainReport) -> None:
            if progress is not None:
                progress(report.succeeded + report.failed, total)

        return run_pending_jobs(
            url, engine=engine, level_id=level_id, options=options, progress=report_progress
        )
    # Share the cores among the workers unless the caller chose a thread count;
    # oversubscribed OpenMP threads spin against each other.
    os.environ.setdefault("OMP_NUM_THREADS", str(max((os.cpu_count() or 1) // n_workers, 1)))
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_main, args=(url, engine, level_id, options))
        for _ in range(n_workers)
    ]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        time.sleep(poll_s)
        if progress is not None:
            progress(max(total - count_open(url, engine=engine, level_id=level_id), 0), total)
    for worker in workers:
        worker.join()
    return None
