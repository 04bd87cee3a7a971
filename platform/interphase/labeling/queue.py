"""Labeling jobs as database rows: claim, execute, record the outcome.

A worker claims a pending job in its own short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so
two workers never run the same job. The claim gives the worker a lease that a
:class:`~interphase.labeling.lease.Heartbeat` renews while the job runs; a job
whose worker died goes back to pending once its lease expires
(:func:`~interphase.labeling.lease.requeue_expired`, called before each claim).

At the claim the job's stored settings are validated (invalid ones fail the
job as ``InvalidInput``, never the worker) and a label the structure already
has at the level is noticed (the job succeeds without computing). DFT engines
(``engine.isolate``), and any job that sets ``time_limit_s`` or
``memory_limit_mb``, run in their own process with those limits
(:mod:`interphase.labeling.isolated`). SIGINT and SIGTERM stop the calculation
and put the job back to pending at once (:mod:`interphase.labeling.signals`);
a transient database error is retried (:mod:`interphase.labeling.dbretry`).
Every execution is a :class:`~interphase.db.models.JobAttempt` holding its
settings, worker, pid, exit code, timing, error class, message and log tail.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.api import record_from_row
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob, LevelOfTheory, utcnow
from interphase.db.session import transaction
from interphase.db.sqlite import DatabaseDiskFullError
from interphase.labeling.dbretry import with_retries
from interphase.labeling.engine import (
    Calculation,
    EngineCrashed,
    EngineError,
    EngineUnavailable,
    InvalidInput,
    LabelingEngine,
)
from interphase.labeling.engines import ENGINES, UnknownEngineError, get_engine
from interphase.labeling.forkserver import calculation_servers
from interphase.labeling.isolated import LeaseLost, Limits, ProcessReport, run_isolated
from interphase.labeling.lease import Heartbeat, requeue_expired
from interphase.labeling.options import WorkerOptions
from interphase.labeling.outcome import (
    AttemptEnd,
    ClaimedJob,
    Outcome,
    record_already_labeled,
    record_failure,
    record_label,
)
from interphase.labeling.release import release_interrupted, release_on_full_disk
from interphase.labeling.settings import (
    CONTROL_KEYS,
    JobSettingsError,
    split_settings,
    validate_job_settings,
)
from interphase.labeling.signals import StopGuard, WorkerInterrupted, stop_signals
from interphase.records import LabelRecord

__all__ = ["CONTROL_KEYS", "ClaimedJob", "DrainReport", "Outcome", "WorkerOptions"]


@dataclass
class DrainReport:
    """Outcome counts of one :func:`run_pending_jobs` call."""

    succeeded: int = 0
    #: Succeeded without computing: the label was there already.
    already_labeled: int = 0
    failed: int = 0
    #: Failures that went back to pending under the retry policy.
    retried: int = 0
    #: Jobs whose lease was lost mid-run (another worker requeued them).
    abandoned: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    @property
    def done(self) -> int:
        """Jobs finished for good (succeeded, already labeled or failed)."""
        return self.succeeded + self.already_labeled + self.failed


def new_worker_name() -> str:
    """A worker id unique across hosts and processes: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_job(
    url: str | None,
    *,
    worker: str,
    level_id: int | None = None,
    engine: str | None = None,
    campaign_id: int | None = None,
    options: WorkerOptions | None = None,
) -> ClaimedJob | None:
    """Atomically move one pending job to running under a lease; None when none is left.

    ``level_id``, ``engine`` and ``campaign_id`` restrict the claim to those jobs
    (a campaign's: its own and the open jobs of others it waits for).
    """
    options = options or WorkerOptions()
    with transaction(url) as session:
        query = select(LabelingJob).where(LabelingJob.state == JobState.pending)
        if campaign_id is not None:
            query = query.where(membership.campaign_job(campaign_id))
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
        return _claim(session, job, worker, options)


def _claim(session: Session, job: LabelingJob, worker: str, options: WorkerOptions) -> ClaimedJob:
    level = session.get_one(LevelOfTheory, job.level_id)
    engine_name = level.engine or ""
    now = utcnow()
    job.state = JobState.running
    job.attempt += 1
    job.worker = worker
    job.lease_expires_at = now + timedelta(seconds=options.lease_s)
    job.heartbeat_at = now
    trigger = job.requeued_by or "initial"
    job.requeued_by = None
    stored: Any = job.settings
    session.add(
        JobAttempt(
            job_id=job.id,
            number=job.attempt,
            engine=engine_name,
            engine_version=_engine_version(engine_name),
            settings=stored,
            host=socket.gethostname(),
            worker=worker,
            trigger=trigger,
            heartbeat_at=now,
        )
    )
    existing = session.scalar(
        select(Label.id).where(Label.structure_id == job.structure_id, Label.level_id == level.id)
    )
    refusal, settings = _usable_settings(job.id, engine_name, stored)
    control, engine_settings = split_settings(settings)
    limits = Limits(
        time_limit_s=control.time_limit_s or options.time_limit_s,
        memory_limit_mb=control.memory_limit_mb or options.memory_limit_mb,
    )
    own_limit = control.time_limit_s is not None or control.memory_limit_mb is not None
    return ClaimedJob(
        job_id=job.id,
        attempt=job.attempt,
        engine=engine_name,
        level_name=level.name,
        structure=record_from_row(job.structure),
        calculation=Calculation(level.method or "", level.basis, engine_settings),
        limits=limits,
        reference_energies_hartree=dict(level.reference_energies_hartree or {}),
        isolate=own_limit or bool(options.isolate) or _engine_isolates(engine_name),
        refusal=refusal,
        existing_label_id=None if existing is None else int(existing),
    )


def _usable_settings(
    job_id: int, engine: str, stored: Any
) -> tuple[InvalidInput | None, dict[str, Any]]:
    """(why the stored settings cannot be used, the settings to run with)."""
    if engine not in ENGINES:  # nothing to check them against; the run says EngineUnavailable
        return None, {}
    try:
        return None, validate_job_settings(engine, stored)
    except JobSettingsError as error:
        return InvalidInput(
            f"stored settings cannot be used: {error}; fix them with "
            f"`interphase jobs resubmit {job_id} --set KEY=VALUE` or `--unset KEY`"
        ), {}


def _engine_isolates(name: str) -> bool:
    return name in ENGINES and ENGINES[name].isolate


def execute_job(
    url: str | None,
    claimed: ClaimedJob,
    *,
    worker: str,
    options: WorkerOptions | None = None,
    guard: StopGuard | None = None,
) -> Outcome:
    """Run a claimed job and record its outcome.

    Raises
    ------
    WorkerInterrupted
        After a stop signal: the calculation was stopped, the attempt recorded
        as ``Interrupted`` and the job put back to pending.
    DatabaseDiskFullError
        The database's disk filled up: the calculation was stopped, the attempt
        recorded as ``Interrupted`` and the job put back to pending, or, where
        even that could not be written, the message says that the job returns
        when its lease expires.
    """
    options = options or WorkerOptions()
    report = ProcessReport(pid=os.getpid())
    started = time.perf_counter()

    def end() -> AttemptEnd:
        return AttemptEnd(time.perf_counter() - started, report)

    try:
        return _execute(url, claimed, worker, options, guard or StopGuard(), report, end)
    except DatabaseDiskFullError as full:
        raise release_on_full_disk(url, claimed, worker, end(), full, options) from None


def _execute(
    url: str | None,
    claimed: ClaimedJob,
    worker: str,
    options: WorkerOptions,
    guard: StopGuard,
    report: ProcessReport,
    end: Callable[[], AttemptEnd],
) -> Outcome:
    if claimed.existing_label_id is not None:
        return _record(url, options, lambda s: record_already_labeled(s, claimed, worker, end()))
    if claimed.refusal is not None:
        return _failed(url, claimed, worker, end(), claimed.refusal, options)
    label: LabelRecord | None = None
    error: EngineError | None = None
    heartbeat = Heartbeat(
        url,
        claimed.job_id,
        claimed.attempt,
        worker,
        lease_s=options.lease_s,
        interval_s=options.renewal_s,
    )
    try:
        with heartbeat:
            label = _compute(url, claimed, options, report, heartbeat, guard)
    except LeaseLost:
        return Outcome.abandoned
    except WorkerInterrupted as stop:
        release_interrupted(url, claimed, worker, end(), stop, options)
        raise WorkerInterrupted(stop.signum, claimed.job_id) from None
    except EngineError as failure:
        error = failure
    except DatabaseDiskFullError:
        raise  # not the engine's failure: the caller releases the job
    except Exception as bug:  # an engine bug must still end as a recorded failure
        error = EngineCrashed(f"{type(bug).__name__}: {bug}", log_tail=traceback.format_exc())
    if label is not None:
        done = end()
        return _record(url, options, lambda s: record_label(s, claimed, worker, done, label))
    return _failed(url, claimed, worker, end(), error or EngineCrashed("no result"), options)


def _failed(
    url: str | None,
    claimed: ClaimedJob,
    worker: str,
    end: AttemptEnd,
    error: EngineError,
    options: WorkerOptions,
) -> Outcome:
    return _record(
        url, options, lambda s: record_failure(s, claimed, worker, end, error, options.retry)
    )


def _record(
    url: str | None, options: WorkerOptions, record: Callable[[Session], Outcome]
) -> Outcome:
    def attempt() -> Outcome:
        with transaction(url) as session:
            return record(session)

    return with_retries(
        attempt, what="record a job outcome", give_up_after_s=options.database_retry_s
    )


def _compute(
    url: str | None,
    claimed: ClaimedJob,
    options: WorkerOptions,
    report: ProcessReport,
    heartbeat: Heartbeat,
    guard: StopGuard,
) -> LabelRecord:
    engine = _engine(claimed.engine)
    if not claimed.isolate:
        with guard.raising():
            return engine.compute(claimed.structure, claimed.calculation)

    def check_in() -> None:
        guard.check()
        if not heartbeat.alive:
            raise LeaseLost("the job's lease was lost; its calculation was stopped")

    return run_isolated(
        engine,
        claimed.structure,
        claimed.calculation,
        claimed.limits,
        report,
        on_start=lambda pid: _record_pid(url, claimed, pid, options),
        check_in=check_in,
    )


def _record_pid(url: str | None, claimed: ClaimedJob, pid: int, options: WorkerOptions) -> None:
    def attempt() -> None:
        with transaction(url) as session:
            session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == claimed.job_id, JobAttempt.number == claimed.attempt)
                .values(pid=pid)
                .execution_options(synchronize_session=False)
            )

    with_retries(attempt, what="record a pid", give_up_after_s=options.database_retry_s)


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


def run_pending_jobs(
    url: str | None = None,
    *,
    level_id: int | None = None,
    engine: str | None = None,
    campaign_id: int | None = None,
    progress: Callable[[DrainReport], None] | None = None,
    options: WorkerOptions | None = None,
    worker: str | None = None,
    handle_signals: bool = True,
    guard: StopGuard | None = None,
) -> DrainReport:
    """Claim and run pending jobs until none is left (one worker, this process).

    Expired leases of other workers are requeued before each claim, so a job
    left behind by a dead worker is picked up here too. With
    ``handle_signals`` (and in the main thread) SIGINT and SIGTERM stop the
    running calculation, put its job back to pending and raise
    :class:`~interphase.labeling.signals.WorkerInterrupted`. A caller's
    ``guard`` is checked between jobs and while an isolated job runs, so a
    worker without signal handlers (a Dask worker thread) can be stopped the
    same way (a subclass whose ``check`` looks at a flag elsewhere).

    Nothing it started outlives it: when it returns or raises, every
    calculation process has exited, and so have the fork server and resource
    tracker it started (:func:`~interphase.labeling.forkserver.calculation_servers`).
    """
    options = options or WorkerOptions()
    worker = worker or new_worker_name()
    report = DrainReport()
    retrying = options.database_retry_s

    def claim() -> ClaimedJob | None:
        requeue_expired(url, options.retry)
        return claim_job(
            url,
            worker=worker,
            level_id=level_id,
            engine=engine,
            campaign_id=campaign_id,
            options=options,
        )

    with stop_signals(handle_signals, guard) as guard, calculation_servers():
        while True:
            guard.check()
            claimed = with_retries(claim, what="claim a job", give_up_after_s=retrying)
            if claimed is None:
                return report
            if guard.received is not None:  # arrived during the claim: hand the job back
                stop = WorkerInterrupted(guard.received, claimed.job_id)
                end = AttemptEnd(0.0, ProcessReport(pid=os.getpid()))
                release_interrupted(url, claimed, worker, end, stop, options)
                raise stop
            report.add(execute_job(url, claimed, worker=worker, options=options, guard=guard))
            if progress is not None:
                progress(report)
