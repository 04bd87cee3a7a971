"""Running labeling jobs: execute a claimed job, record its outcome, drain the queue.

A job whose worker died goes back to pending once its lease expires
(:func:`~interphase.labeling.queue.lease.requeue_expired`, called before each
claim). DFT engines (``engine.isolate``), and any job that sets
``time_limit_s`` or ``memory_limit_mb``, run in their own process with those
limits (:mod:`interphase.labeling.isolation.run`). SIGINT and SIGTERM stop the
calculation and put the job back to pending at once
(:mod:`interphase.labeling.queue.signals`); a transient database error is
retried (:mod:`interphase.labeling.queue.db_retry`). Every execution is a
:class:`~interphase.db.models.JobAttempt` holding its settings, worker, pid,
exit code, timing, error class, message and log tail.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from interphase.db.models import JobAttempt
from interphase.db.session import transaction
from interphase.db.sqlite import DatabaseDiskFullError
from interphase.labeling.engines import UnknownEngineError, get_engine
from interphase.labeling.engines.contract import (
    EngineCrashed,
    EngineError,
    EngineUnavailable,
    LabelingEngine,
)
from interphase.labeling.isolation.forkserver import calculation_servers
from interphase.labeling.isolation.run import LeaseLost, ProcessReport, run_isolated
from interphase.labeling.queue.claim import claim_job
from interphase.labeling.queue.db_retry import with_retries
from interphase.labeling.queue.lease import job_heartbeat, requeue_expired
from interphase.labeling.queue.outcome import (
    AttemptEnd,
    ClaimedJob,
    Outcome,
    record_already_labeled,
    record_failure,
    record_label,
)
from interphase.labeling.queue.release import release_interrupted, release_on_full_disk
from interphase.labeling.queue.signals import StopGuard, WorkerInterrupted, stop_signals
from interphase.labeling.queue.worker_options import WorkerOptions
from interphase.leases import Heartbeat, holder_name
from interphase.records import LabelRecord


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
        """Count one job that ended with ``outcome``."""
        match outcome:
            case Outcome.succeeded:
                self.succeeded += 1
            case Outcome.already_labeled:
                self.already_labeled += 1
            case Outcome.failed:
                self.failed += 1
            case Outcome.retried:
                self.retried += 1
            case Outcome.abandoned:
                self.abandoned += 1

    def merge(self, other: DrainReport) -> None:
        """Add the counts of ``other`` (another worker's report) to these."""
        self.succeeded += other.succeeded
        self.already_labeled += other.already_labeled
        self.failed += other.failed
        self.retried += other.retried
        self.abandoned += other.abandoned

    @property
    def done(self) -> int:
        """Jobs finished for good (succeeded, already labeled or failed)."""
        return self.succeeded + self.already_labeled + self.failed


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
    heartbeat = job_heartbeat(
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
    :class:`~interphase.labeling.queue.signals.WorkerInterrupted`. A caller's
    ``guard`` is checked between jobs and while an isolated job runs, so a
    worker without signal handlers (a Dask worker thread) can be stopped the
    same way (a subclass whose ``check`` looks at a flag elsewhere).

    Nothing it started outlives it: when it returns or raises, every
    calculation process has exited, and so have the fork server and resource
    tracker it started (:func:`~interphase.labeling.isolation.forkserver.calculation_servers`).
    """
    options = options or WorkerOptions()
    worker = worker or holder_name()
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
