"""Putting a claimed job back to pending at once, when its worker has to stop.

After SIGINT or SIGTERM (:func:`release_interrupted`), or when the database's
disk filled up (:func:`release_on_full_disk`), the attempt is recorded as
``Interrupted`` (not counted against the retry budget) and the job goes back
to pending now rather than when its lease expires.
"""

from __future__ import annotations

from interphase.db.session import database_url, transaction
from interphase.db.sqlite import DatabaseDiskFullError, return_wal_space
from interphase.labeling.queue.db_retry import with_retries
from interphase.labeling.queue.outcome import AttemptEnd, ClaimedJob, record_interrupted
from interphase.labeling.queue.signals import WorkerInterrupted
from interphase.labeling.queue.worker_options import WorkerOptions


def release_interrupted(
    url: str | None,
    claimed: ClaimedJob,
    worker: str,
    end: AttemptEnd,
    stop: WorkerInterrupted,
    options: WorkerOptions,
) -> None:
    """Record the attempt as ``Interrupted`` and put the job back to pending now."""

    def attempt() -> bool:
        with transaction(url) as session:
            return record_interrupted(
                session, claimed, worker, end, f"stopped by {stop.signal_name}"
            )

    with_retries(
        attempt, what="release an interrupted job", give_up_after_s=options.database_retry_s
    )


def release_on_full_disk(
    url: str | None,
    claimed: ClaimedJob,
    worker: str,
    end: AttemptEnd,
    full: DatabaseDiskFullError,
    options: WorkerOptions,
) -> DatabaseDiskFullError:
    """Put the job back to pending after the database's disk filled up; the error to raise.

    The release is a small write. Where even that does not fit, the SQLite
    WAL's space is returned (:func:`~interphase.db.sqlite.return_wal_space`)
    and the release tried once more.
    """
    reason = f"stopped: disk full at {full.path}"

    def attempt() -> bool:
        with transaction(url) as session:
            return record_interrupted(session, claimed, worker, end, reason)

    def release() -> bool:
        return with_retries(attempt, what="release a job", give_up_after_s=options.database_retry_s)

    try:
        try:
            released = release()
        except DatabaseDiskFullError:
            if not return_wal_space(database_url(url)):
                raise
            released = release()
    except DatabaseDiskFullError:
        return DatabaseDiskFullError(
            f"{full}; job {claimed.job_id} could not be put back to pending either, and will "
            f"be when its lease expires (at most {options.lease_s:g} s)",
            full.path,
        )
    where = "put back to pending" if released else "already taken over by another worker"
    return DatabaseDiskFullError(f"{full}; job {claimed.job_id} {where}", full.path)
