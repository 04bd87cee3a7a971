"""Recording how a job attempt ended: label, failure, interruption or a label already there.

Each function takes the open session of the transaction that records it and
changes nothing when the job is no longer the caller's (its lease expired and
another worker requeued it): the new owner records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db.labels import insert_label_once, label_row
from interphase.db.models import JobAttempt, JobState, LabelingJob, utcnow
from interphase.labeling.engines.contract import Calculation, EngineError
from interphase.labeling.isolation.run import Limits, ProcessReport
from interphase.labeling.levels import atomization_energy
from interphase.labeling.queue.retry import INTERRUPTED, RetryPolicy
from interphase.records import LabelRecord, StructureRecord


class Outcome(enum.StrEnum):
    """How one claimed job ended for this worker."""

    succeeded = "succeeded"
    #: The structure had a label at the level already; nothing computed or stored.
    already_labeled = "already_labeled"
    failed = "failed"
    #: Failed, and back to pending under the retry policy.
    retried = "retried"
    #: The lease was lost mid-run (another worker requeued the job).
    abandoned = "abandoned"


class RequeueReason(enum.StrEnum):
    """Why a job went back to pending: ``LabelingJob.requeued_by``, then its next attempt's trigger.

    The values are what the database stores.
    """

    #: The retry policy gave a failed attempt another try.
    retry = "retry"
    #: ``interphase jobs resubmit`` or the dashboard's resubmit.
    resubmit = "resubmit"
    #: The worker was stopped (SIGINT/SIGTERM) or its disk filled up.
    interrupted = "interrupted"
    #: The worker stopped renewing its lease.
    lease_expired = "lease-expired"


#: Trigger of a job's first attempt (it was never requeued).
FIRST_ATTEMPT = "initial"


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
    #: Run in a child process (the engine's choice, or the job sets a limit).
    isolate: bool = False
    #: Why the job cannot run at all (its stored settings are invalid).
    refusal: EngineError | None = None
    #: Id of a label the structure already has at the level (nothing to compute).
    existing_label_id: int | None = None


@dataclass(frozen=True)
class AttemptEnd:
    """How the attempt's process ended and how long it took."""

    wall_time_s: float
    report: ProcessReport


def _owned_job(session: Session, claimed: ClaimedJob, worker: str) -> LabelingJob | None:
    job = session.get_one(LabelingJob, claimed.job_id, with_for_update=True)
    if job.state != JobState.running or job.worker != worker or job.attempt != claimed.attempt:
        return None  # requeued after an expired lease; the new owner records
    return job


def _close_attempt(session: Session, claimed: ClaimedJob, end: AttemptEnd) -> JobAttempt:
    attempt = session.scalars(
        select(JobAttempt).where(
            JobAttempt.job_id == claimed.job_id, JobAttempt.number == claimed.attempt
        )
    ).one()
    attempt.finished_at = utcnow()
    attempt.wall_time_s = end.wall_time_s
    attempt.pid = end.report.pid or attempt.pid
    attempt.exit_code = end.report.exit_code
    attempt.peak_memory_mb = end.report.peak_memory_mb
    return attempt


def record_label(
    session: Session, claimed: ClaimedJob, worker: str, end: AttemptEnd, label: LabelRecord
) -> Outcome:
    """Store the label and mark job and attempt succeeded.

    A label that appeared meanwhile (imported, or a race) is kept and this one
    dropped: the attempt says so and the job still succeeds.
    """
    job = _owned_job(session, claimed, worker)
    if job is None:
        return Outcome.abandoned
    attempt = _close_attempt(session, claimed, end)
    attempt.log_tail = end.report.log_tail  # an isolated run's log, kept for every outcome
    job.lease_expires_at = None
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
    label_id, created = insert_label_once(session, row)
    if created:
        return Outcome.succeeded
    attempt.error_message = already_labeled_note(label_id)
    return Outcome.already_labeled


def already_labeled_note(label_id: int) -> str:
    return f"label already present (label {label_id}); nothing stored"


def record_already_labeled(
    session: Session, claimed: ClaimedJob, worker: str, end: AttemptEnd
) -> Outcome:
    """The structure had a label at the level when the job was claimed: succeed, compute nothing."""
    job = _owned_job(session, claimed, worker)
    if job is None:
        return Outcome.abandoned
    attempt = _close_attempt(session, claimed, end)
    job.lease_expires_at = None
    job.state = attempt.state = JobState.succeeded
    job.error_class = job.error_message = None
    attempt.error_message = already_labeled_note(claimed.existing_label_id or 0)
    return Outcome.already_labeled


def record_failure(
    session: Session,
    claimed: ClaimedJob,
    worker: str,
    end: AttemptEnd,
    error: EngineError,
    retry: RetryPolicy,
) -> Outcome:
    """Mark the attempt failed; requeue the job when the retry policy allows, else fail it."""
    job = _owned_job(session, claimed, worker)
    if job is None:
        return Outcome.abandoned
    attempt = _close_attempt(session, claimed, end)
    job.lease_expires_at = None
    attempt.state = JobState.failed
    job.error_class = attempt.error_class = error.error_class
    job.error_message = attempt.error_message = str(error)
    attempt.log_tail = error.log_tail or end.report.log_tail
    settings = None
    if claimed.refusal is None:
        settings = retry.settings_after(error.error_class, job, claimed.engine, claimed.limits)
    if settings is None:
        job.state = JobState.failed
        return Outcome.failed
    job.state, job.settings, job.requeued_by = JobState.pending, settings, RequeueReason.retry
    return Outcome.retried


def record_interrupted(
    session: Session, claimed: ClaimedJob, worker: str, end: AttemptEnd, reason: str
) -> bool:
    """Close the attempt as ``Interrupted`` and put the job back to pending at once.

    ``reason`` completes "worker …" (``stopped by SIGTERM``). The attempt does
    not count against the retry budget. Returns False when the job was no
    longer this worker's.
    """
    job = _owned_job(session, claimed, worker)
    if job is None:
        return False
    attempt = _close_attempt(session, claimed, end)
    message = f"worker {reason}; job put back to pending"
    attempt.state = JobState.failed
    job.error_class = attempt.error_class = INTERRUPTED
    job.error_message = attempt.error_message = message
    attempt.log_tail = end.report.log_tail
    job.state, job.requeued_by = JobState.pending, RequeueReason.interrupted
    job.lease_expires_at = None
    job.budget_start_attempt += 1
    return True
