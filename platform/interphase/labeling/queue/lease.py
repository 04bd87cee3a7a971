"""Leases on running jobs: renewal by heartbeat, and requeue when a worker dies.

A worker that claims a job holds a lease until ``lease_expires_at``. While the
calculation runs, a heartbeat thread (:func:`job_heartbeat`) renews it every few seconds. A
worker that dies stops renewing; any worker then finds the expired lease
(:func:`requeue_expired`), marks that attempt failed (``LeaseExpired``) and
puts the job back to pending, or fails it when the retry policy says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from interphase.db.models import JobAttempt, JobState, LabelingJob, utcnow
from interphase.db.session import transaction
from interphase.db.sqlite import DatabaseDiskFullError
from interphase.labeling.queue.db_retry import is_transient, logger
from interphase.labeling.queue.outcome import RequeueReason
from interphase.labeling.queue.retry import LEASE_EXPIRED, RetryPolicy
from interphase.leases import Heartbeat


def renew_lease(url: str | None, job_id: int, attempt: int, worker: str, lease_s: float) -> bool:
    """Extend the lease of a job this worker runs; False when it is no longer ours."""
    now = utcnow()
    with transaction(url) as session:
        result: Any = session.execute(
            update(LabelingJob)
            .where(
                LabelingJob.id == job_id,
                LabelingJob.state == JobState.running,
                LabelingJob.worker == worker,
                LabelingJob.attempt == attempt,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        renewed = int(result.rowcount)
        if renewed:
            session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == job_id, JobAttempt.number == attempt)
                .values(heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
    return bool(renewed)


def job_heartbeat(
    url: str | None, job_id: int, attempt: int, worker: str, *, lease_s: float, interval_s: float
) -> Heartbeat:
    """A :class:`~interphase.leases.Heartbeat` that renews a job's lease while the job runs.

    Its :attr:`~interphase.leases.Heartbeat.alive` turns False as soon as a
    renewal finds the job taken away (requeued after an expired lease). A
    renewal that fails on a transient database error is logged and tried again
    at the next beat; the lease spans several beats, so one missed renewal
    costs nothing.
    """

    def renew() -> bool:
        try:
            return renew_lease(url, job_id, attempt, worker, lease_s)
        except DBAPIError as error:
            if not is_transient(error):
                raise
            logger.warning(
                "job %d: lease renewal failed (%s); next beat retries", job_id, error.orig
            )
        except DatabaseDiskFullError as error:  # the job's own write reports it and stops
            logger.info("job %d: lease renewal failed (%s)", job_id, error)
        return True

    return Heartbeat(renew, interval_s=interval_s, name=f"heartbeat-{job_id}")


def requeue_expired(url: str | None, retry: RetryPolicy | None = None) -> list[int]:
    """Put running jobs whose lease expired back to pending (or fail them).

    Their current attempt is closed as failed with error class ``LeaseExpired``.
    Rows are locked with ``SKIP LOCKED`` so concurrent workers requeue each job
    once. Returns the ids of the jobs that were handled.
    """
    retry = retry or RetryPolicy()
    now = utcnow()
    with transaction(url) as session:
        jobs = session.scalars(
            select(LabelingJob)
            .where(LabelingJob.state == JobState.running, LabelingJob.lease_expires_at < now)
            .order_by(LabelingJob.id)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            attempt = session.scalar(
                select(JobAttempt).where(
                    JobAttempt.job_id == job.id, JobAttempt.number == job.attempt
                )
            )
            message = (
                f"worker {job.worker} stopped renewing its lease "
                f"(last heartbeat {job.heartbeat_at or 'never'}); job requeued"
            )
            if attempt is not None:
                attempt.state = JobState.failed
                attempt.error_class = LEASE_EXPIRED
                attempt.error_message = message
                attempt.finished_at = now
            settings = retry.settings_after(LEASE_EXPIRED, job, job.level.engine or "")
            job.error_class, job.error_message = LEASE_EXPIRED, message
            job.lease_expires_at = None
            if settings is None:
                job.state = JobState.failed
            else:
                job.state, job.settings = JobState.pending, settings
                job.requeued_by = RequeueReason.lease_expired
        return [job.id for job in jobs]
