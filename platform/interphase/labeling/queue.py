"""Labeling jobs as database rows: claim, execute, record the outcome.

A worker claims a pending job in its own short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so
two workers never run the same job. Every execution is a
:class:`~interphase.db.models.JobAttempt`; a failure keeps its error class,
message and log tail, and never loses the job.
"""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import PackageNotFoundError

from sqlalchemy import select

from interphase.db.api import label_row, record_from_row
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob, LevelOfTheory, utcnow
from interphase.db.session import transaction
from interphase.labeling.engine import (
    Calculation,
    EngineCrashed,
    EngineError,
    EngineUnavailable,
    LabelingEngine,
)
from interphase.labeling.engines import UnknownEngineError, get_engine
from interphase.records import LabelRecord

LEASE = timedelta(minutes=30)


@dataclass
class DrainReport:
    """Outcome counts of one :func:`run_pending_jobs` call."""

    succeeded: int = 0
    failed: int = 0


def claim_job(url: str | None, *, level_id: int | None = None, worker: str) -> int | None:
    """Atomically move one pending job to running; returns its id or None."""
    with transaction(url) as session:
        query = select(LabelingJob).where(LabelingJob.state == JobState.pending)
        if level_id is not None:
            query = query.where(LabelingJob.level_id == level_id)
        job = session.scalar(
            query.order_by(LabelingJob.id).limit(1).with_for_update(skip_locked=True)
        )
        if job is None:
            return None
        level = session.get_one(LevelOfTheory, job.level_id)
        job.state = JobState.running
        job.attempt += 1
        job.worker = worker
        job.lease_expires_at = utcnow() + LEASE
        session.add(
            JobAttempt(
                job_id=job.id,
                number=job.attempt,
                engine=level.engine or "",
                engine_version=_engine_version(level.engine),
                settings=dict(job.settings),
                host=socket.gethostname(),
            )
        )
        return job.id


def execute_job(url: str | None, job_id: int) -> bool:
    """Run a claimed job and record its outcome; True when it succeeded."""
    with transaction(url) as session:
        job = session.get_one(LabelingJob, job_id)
        level = job.level
        structure = record_from_row(job.structure)
        calculation = Calculation(level.method or "", level.basis, dict(job.settings))
        engine_name = level.engine or ""
    started = time.perf_counter()
    try:
        label = _engine(engine_name).compute(structure, calculation)
    except EngineError as error:
        _finish(url, job_id, time.perf_counter() - started, error=error)
        return False
    except Exception as error:  # an engine bug must still end as a recorded failure
        crash = EngineCrashed(f"{type(error).__name__}: {error}", log_tail=traceback.format_exc())
        _finish(url, job_id, time.perf_counter() - started, error=crash)
        return False
    label.level = level.name
    _finish(url, job_id, time.perf_counter() - started, label=label)
    return True


def _engine(name: str) -> LabelingEngine:
    try:
        return get_engine(name)
    except UnknownEngineError as error:
        raise EngineUnavailable(str(error.args[0])) from error


def _engine_version(name: str | None) -> str | None:
    try:
        return get_engine(name or "").version()
    except (UnknownEngineError, ImportError, PackageNotFoundError):
        return None


def _finish(
    url: str | None,
    job_id: int,
    wall_time_s: float,
    *,
    label: LabelRecord | None = None,
    error: EngineError | None = None,
) -> None:
    with transaction(url) as session:
        job = session.get_one(LabelingJob, job_id)
        attempt = session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id, JobAttempt.number == job.attempt)
        ).one()
        attempt.finished_at = utcnow()
        attempt.wall_time_s = wall_time_s
        job.lease_expires_at = None
        if error is None and label is not None:
            job.state = attempt.state = JobState.succeeded
            job.error_class = job.error_message = None
            row = label_row(job.structure_id, job.level_id, label, job_id=job.id)
            row["provenance"] = {**row["provenance"], "host": attempt.host}
            session.add(Label(**row))
        elif error is not None:
            job.state = attempt.state = JobState.failed
            job.error_class = attempt.error_class = error.error_class
            job.error_message = attempt.error_message = str(error)
            attempt.log_tail = error.log_tail


def run_pending_jobs(
    url: str | None = None,
    *,
    level_id: int | None = None,
    progress: Callable[[DrainReport], None] | None = None,
) -> DrainReport:
    """Claim and run pending jobs until none is left."""
    report = DrainReport()
    worker = f"{socket.gethostname()}:{id(report)}"
    while (job_id := claim_job(url, level_id=level_id, worker=worker)) is not None:
        if execute_job(url, job_id):
            report.succeeded += 1
        else:
            report.failed += 1
        if progress is not None:
            progress(report)
    return report
