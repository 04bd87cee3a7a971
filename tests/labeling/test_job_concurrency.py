"""Workers in separate processes: atomic claims, leases, and requeue after a worker dies."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import func, select

from interphase.db.models import JobAttempt, JobState, Label, LabelingJob, utcnow
from interphase.db.session import transaction
from interphase.labeling.queue.retry import LEASE_EXPIRED
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    job_and_attempts,
    job_state,
    queue_jobs,
    start_worker,
    wait_for,
    waters,
)


@pytest.mark.slow
def test_two_workers_run_each_of_200_jobs_exactly_once(db_url: str) -> None:
    queue_jobs(db_url, waters(200), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    workers = [start_worker(db_url), start_worker(db_url)]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    with transaction(db_url) as session:
        states = Counter(session.scalars(select(LabelingJob.state)))
        assert states == {JobState.succeeded: 200}
        per_job = Counter(session.scalars(select(JobAttempt.job_id)))
        assert len(per_job) == 200 and set(per_job.values()) == {1}  # each ran exactly once
        assert session.scalar(select(func.count()).select_from(Label)) == 200
        by_worker = Counter(session.scalars(select(JobAttempt.worker)))
    assert len(by_worker) == 2  # both workers took part
    succeeded = sum(int(out.splitlines()[-1].split()[0]) for out, _ in outputs)
    assert succeeded == 200


@pytest.mark.slow
def test_job_of_a_killed_worker_is_requeued_and_finished_by_another(
    db_url: str, tmp_path: Path
) -> None:
    fake_engines.register()
    hold = tmp_path / "hold"
    hold.touch()
    (job_id,) = queue_jobs(
        db_url,
        waters(1),
        level="held",
        engine="holding",
        method="GFN2-xTB",
        settings={"hold_file": str(hold)},
    )
    doomed = start_worker(db_url, lease_s=5.0)
    wait_for(lambda: job_state(db_url, job_id) == JobState.running, "the job to be claimed")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    hold.unlink()

    # While the dead worker's lease lasts, nobody else may take its job.
    options = WorkerOptions(lease_s=30, heartbeat_s=0.5)
    lease_end = job_and_attempts(db_url, job_id)[0].lease_expires_at
    assert lease_end is not None
    early = run_pending_jobs(db_url, options=options)
    if utcnow() < lease_end.replace(tzinfo=lease_end.tzinfo or UTC):
        assert early.succeeded == 0  # the whole call ran inside the lease
    wait_for(
        lambda: (
            run_pending_jobs(db_url, options=options).succeeded
            or job_state(db_url, job_id) == JobState.succeeded
        ),
        "the requeued job to be run",
    )
    job, attempts = job_and_attempts(db_url, job_id)
    assert job.state == JobState.succeeded
    assert [a.error_class for a in attempts] == [LEASE_EXPIRED, None]
    assert [a.trigger for a in attempts] == ["initial", "lease-expired"]
    assert attempts[0].worker != attempts[1].worker
