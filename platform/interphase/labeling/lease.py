"""Leases on running jobs: renewal by heartbeat, and requeue when a worker dies.

A worker that claims a job holds a lease until ``lease_expires_at``. While the
calculation runs, a :class:`Heartbeat` thread renews it every few seconds. A
worker that dies stops renewing; any worker then finds the expired lease
(:func:`requeue_expired`), marks that attempt failed (``LeaseExpired``) and
puts the job back to pending, or fails it when the retry policy says so.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from interphase.db.models import JobAttempt, JobState, LabelingJob, utcnow
from interphase.db.session import transaction
from interphase.db.sqlite import DatabaseDiskFullError
from interphase.labeling.dbretry import is_transient, logger
from interphase.labeling.engines import UnknownEngineError, get_engine
from interphase.labeling.retry import LEASE_EXPIRED, RetryPolicy
from interphase.labeling.settings import JobSettingsError, validate_job_settings


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


class Heartbeat:
    """Renews a job's lease from a background thread while the job runs.

    Use as a context manager; :attr:`alive` turns False as soon as a renewal
    finds the job taken away (requeued after an expired lease). A renewal that
    fails on a transient database error is logged and tried again at the next
    beat; the lease spans several beats, so one missed renewal costs nothing.
    """

    def __init__(
        self,
        url: str | None,
        job_id: int,
        attempt: int,
        worker: str,
        *,
        lease_s: float,
        interval_s: float,
    ) -> None:
        self.url, self.job_id, self.attempt, self.worker = url, job_id, attempt, worker
        self.lease_s, self.interval_s = lease_s, interval_s
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    @property
    def alive(self) -> bool:
        return not self._lost.is_set()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                renewed = renew_lease(
                    self.url, self.job_id, self.attempt, self.worker, self.lease_s
                )
            except DBAPIError as error:
                if not is_transient(error):
                    raise
                logger.warning(
                    "job %d: lease renewal failed (%s); next beat retries", self.job_id, error.orig
                )
                continue
            except DatabaseDiskFullError as error:  # the job's own write reports it and stops
                logger.info("job %d: lease renewal failed (%s)", self.job_id, error)
                continue
            if not renewed:
                self._lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


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
            settings = _retry_settings(job, retry)
            job.error_class, job.error_message = LEASE_EXPIRED, message
            job.lease_expires_at = None
            if settings is None:
                job.state = JobState.failed
            else:
                job.state, job.settings, job.requeued_by = (
                    JobState.pending,
                    settings,
                    "lease-expired",
                )
        return [job.id for job in jobs]


def _retry_settings(job: LabelingJob, retry: RetryPolicy) -> dict[str, Any] | None:
    """Settings of the job's next attempt after a lost lease; None: it stays failed."""
    try:
        engine = get_engine(job.level.engine or "")
    except UnknownEngineError:
        engine = None
    budget_used = job.attempt - job.budget_start_attempt
    settings = retry.next_settings(LEASE_EXPIRED, budget_used, dict(job.settings), engine)
    if settings is None or engine is None:
        return settings  # an engine unknown here: the claiming worker checks
    try:
        return validate_job_settings(job.level.engine, settings)
    except JobSettingsError:
        return None  # never requeue settings the next claim would refuse
