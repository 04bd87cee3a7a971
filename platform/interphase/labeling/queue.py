"""Labeling jobs as database rows: claim, execute, record the outcome.

A worker claims a pending job in its own short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so
two workers never run the same job. The claim gives the worker a lease that a
:class:`~interphase.labeling.lease.Heartbeat` renews while the job runs; a job
whose worker died goes back to pending once its lease expires
(:func:`~interphase.labeling.lease.requeue_expired`, called before each claim).

DFT engines (``engine.isolate``) run each job in its own process with a time
and memory limit (:mod:`interphase.labeling.isolated`). Every execution is a
:class:`~interphase.db.models.JobAttempt` holding its settings, worker, pid,
exit code, timing, error class, message and log tail; the
:class:`~interphase.labeling.retry.RetryPolicy` decides whether a failure is
retried, and with which settings.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from typing import Any

from sqlalchemy import select, update

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
from interphase.labeling.isolated import LeaseLost, Limits, ProcessReport, run_isolated
from interphase.labeling.lease import Heartbeat, requeue_expired
from interphase.labeling.levels import atomization_energy
from interphase.labeling.retry import RetryPolicy
from interphase.records import LabelRecord, StructureRecord

#: Job settings read by the queue itself, never passed to an engine.
JOB_CONTROL_KEYS = frozenset({"time_limit_s", "memory_limit_mb"})


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs jobs.

    Parameters
    ----------
    lease_s
        Lease length; a job whose worker has not renewed it for this long is
        requeued.
    heartbeat_s
        Interval between lease renewals (well under ``lease_s``).
    time_limit_s, memory_limit_mb
        Defaults for isolated jobs; a job's own ``time_limit_s`` /
        ``memory_limit_mb`` settings win.
    isolate
        Run every job in its own process (True), none (False), or as each
        engine declares (None: the DFT engines are isolated, tblite is not).
    retry
        The automatic retry policy.
    """

    lease_s: float = 300.0
    heartbeat_s: float = 30.0
    time_limit_s: float | None = 24 * 3600.0
    memory_limit_mb: float | None = None
    isolate: bool | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class DrainReport:
    """Outcome counts of one :func:`run_pending_jobs` call."""

    succeeded: int = 0
    failed: int = 0
    #: Failures that went back to pending under the retry policy.
    retried: int = 0
    #: Jobs whose lease was lost mid-run (another worker requeued them).
    abandoned: int = 0


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run a claimed job."""

    job_id: int
    attempt: int
    engine: str
    level_name: str
    structure: StructureRecord
    calculation: Calculation
    limits: Limits
    reference_energies_hartree: dict[str, float]


def new_worker_name() -> str:
    """A worker id unique across hosts and processes: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_job(
    url: str | None,
    *,
    worker: str,
    level_id: int | None = None,
    engine: str | None = None,
    options: WorkerOptions | None = None,
) -> ClaimedJob | None:
    """Atomically move one pending job to running under a lease; None when none is left."""
    options = options or WorkerOptions()
    with transaction(url) as session:
        query = select(LabelingJob).where(LabelingJob.state == JobState.pending)
        if level_id is not None:
            query = query.where(LabelingJob.level_id == level_id)
        if engine is not None:
            level_ids = select(LevelOfTheory.id).where(LevelOfTheory.engine == engine)
            query = query.where(LabelingJob.level_id.in_(level_ids))
        job = session.scalar(
            query.order_by(LabelingJob.id).limit(1).with_for_update(skip_locked=True)
        )
        if job is None:
            return None
        level = session.get_one(LevelOfTheory, job.level_id)
        now = utcnow()
        job.state = JobState.running
        job.attempt += 1
        job.worker = worker
        job.lease_expires_at = now + timedelta(seconds=options.lease_s)
        job.heartbeat_at = now
        trigger = job.requeued_by or "initial"
        job.requeued_by = None
        settings = dict(job.settings)
        session.add(
            JobAttempt(
                job_id=job.id,
                number=job.attempt,
                engine=level.engine or "",
                engine_version=_engine_version(level.engine),
                settings=settings,
                host=socket.gethostname(),
                worker=worker,
                trigger=trigger,
                heartbeat_at=now,
            )
        )
        return ClaimedJob(
            job_id=job.id,
            attempt=job.attempt,
            engine=level.engine or "",
            level_name=level.name,
            structure=record_from_row(job.structure),
            calculation=Calculation(
                level.method or "",
                level.basis,
                {k: v for k, v in settings.items() if k not in JOB_CONTROL_KEYS},
            ),
            limits=Limits(
                time_limit_s=_float_or(settings.get("time_limit_s"), options.time_limit_s),
                memory_limit_mb=_float_or(settings.get("memory_limit_mb"), options.memory_limit_mb),
            ),
            reference_energies_hartree=dict(level.reference_energies_hartree or {}),
        )


def execute_job(
    url: str | None, claimed: ClaimedJob, *, worker: str, options: WorkerOptions | None = None
) -> str:
    """Run a claimed job and record its outcome.

    Returns
    -------
    str
        ``succeeded``, ``failed``, ``retried`` (failed, back to pending) or
        ``abandoned`` (the lease was lost; nothing recorded by this worker).
    """
    options = options or WorkerOptions()
    report = ProcessReport(pid=os.getpid())
    started = time.perf_counter()
    label: LabelRecord | None = None
    error: EngineError | None = None
    with Heartbeat(
        url,
        claimed.job_id,
        claimed.attempt,
        worker,
        lease_s=options.lease_s,
        interval_s=options.heartbeat_s,
    ) as heartbeat:
        try:
            label = _compute(url, claimed, options, report, heartbeat)
        except LeaseLost:
            return "abandoned"
        except EngineError as failure:
            error = failure
        except Exception as bug:  # an engine bug must still end as a recorded failure
            error = EngineCrashed(f"{type(bug).__name__}: {bug}", log_tail=traceback.format_exc())
    return _finish(
        url,
        claimed,
        worker,
        time.perf_counter() - started,
        report,
        label=label,
        error=error,
        retry=options.retry,
    )


def _compute(
    url: str | None,
    claimed: ClaimedJob,
    options: WorkerOptions,
    report: ProcessReport,
    heartbeat: Heartbeat,
) -> LabelRecord:
    engine = _engine(claimed.engine)
    isolate = engine.isolate if options.isolate is None else options.isolate
    if not isolate:
        return engine.compute(claimed.structure, claimed.calculation)
    return run_isolated(
        engine,
        claimed.structure,
        claimed.calculation,
        claimed.limits,
        report,
        on_start=lambda pid: _record_pid(url, claimed, pid),
        keep_going=lambda: heartbeat.alive,
    )


def _record_pid(url: str | None, claimed: ClaimedJob, pid: int) -> None:
    with transaction(url) as session:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == claimed.job_id, JobAttempt.number == claimed.attempt)
            .values(pid=pid)
            .execution_options(synchronize_session=False)
        )


def _engine(name: str) -> LabelingEngine:
    try:
        return get_engine(name)
    except UnknownEngineError as error:
        raise EngineUnavailable(str(error.args[0])) from error


def _engine_version(name: str | None) -> str | None:
    try:
        return get_engine(name or "").version()
    except (UnknownEngineError, ImportError, PackageNotFoundError, EngineError):
        return None


def _float_or(value: Any, default: float | None) -> float | None:
    return default if value is None else float(value)


def _finish(
    url: str | None,
    claimed: ClaimedJob,
    worker: str,
    wall_time_s: float,
    report: ProcessReport,
    *,
    label: LabelRecord | None,
    error: EngineError | None,
    retry: RetryPolicy,
) -> str:
    with transaction(url) as session:
        job = session.get_one(LabelingJob, claimed.job_id, with_for_update=True)
        if job.state != JobState.running or job.worker != worker or job.attempt != claimed.attempt:
            return "abandoned"  # requeued after an expired lease; the new owner records
        attempt = session.scalars(
            select(JobAttempt).where(
                JobAttempt.job_id == job.id, JobAttempt.number == claimed.attempt
            )
        ).one()
        attempt.finished_at = utcnow()
        attempt.wall_time_s = wall_time_s
        attempt.pid, attempt.exit_code = attempt.pid or report.pid, report.exit_code
        attempt.peak_memory_mb = report.peak_memory_mb
        job.lease_expires_at = None
        if error is None and label is not None:
            _store_label(session, job, attempt, claimed, label)
            return "succeeded"
        assert error is not None  # compute either returns a label or raises
        attempt.state = JobState.failed
        job.error_class = attempt.error_class = error.error_class
        job.error_message = attempt.error_message = str(error)
        attempt.log_tail = error.log_tail
        settings = retry.next_settings(
            error.error_class, job.attempt, dict(job.settings), _engine_or_none(claimed.engine)
        )
        if settings is None:
            job.state = JobState.failed
            return "failed"
        job.state, job.settings, job.requeued_by = JobState.pending, settings, "retry"
        return "retried"


def _store_label(
    session: Any, job: LabelingJob, attempt: JobAttempt, claimed: ClaimedJob, label: LabelRecord
) -> None:
    job.state = attempt.state = JobState.succeeded
    job.error_class = job.error_message = None
    label.level = claimed.level_name
    if label.total_energy_hartree is not None and label.atomization_energy_hartree is None:
        label.atomization_energy_hartree = atomization_energy(
            label.total_energy_hartree,
            claimed.structure.symbols,
            claimed.reference_energies_hartree,
        )
    row = label_row(job.structure_id, job.level_id, label, job_id=job.id)
    row["provenance"] = {
        **row["provenance"],
        "host": attempt.host,
        "worker": attempt.worker,
        "attempt": attempt.number,
    }
    session.add(Label(**row))


def _engine_or_none(name: str) -> LabelingEngine | None:
    try:
        return get_engine(name)
    except UnknownEngineError:
        return None


def run_pending_jobs(
    url: str | None = None,
    *,
    level_id: int | None = None,
    engine: str | None = None,
    progress: Callable[[DrainReport], None] | None = None,
    options: WorkerOptions | None = None,
    worker: str | None = None,
) -> DrainReport:
    """Claim and run pending jobs until none is left (one worker, this process).

    Expired leases of other workers are requeued before each claim, so a job
    left behind by a dead worker is picked up here too.
    """
    options = options or WorkerOptions()
    worker = worker or new_worker_name()
    report = DrainReport()
    while True:
        requeue_expired(url, options.retry)
        claimed = claim_job(url, worker=worker, level_id=level_id, engine=engine, options=options)
        if claimed is None:
            return report
        outcome = execute_job(url, claimed, worker=worker, options=options)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if progress is not None:
            progress(report)
