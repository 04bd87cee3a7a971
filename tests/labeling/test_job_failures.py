"""Failed jobs end with the right error class, keep their log tail, and can be resubmitted.

Real PySCF runs provoke non-convergence (one SCF iteration), a timeout (a time
limit shorter than the run) and a crash (the engine process killed by its pid);
a fake engine provokes the out-of-memory case.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import JobAttempt, JobState, Label
from interphase.db.session import transaction
from interphase.labeling.engines import get_engine
from interphase.labeling.queue import WorkerOptions, run_pending_jobs
from interphase.labeling.retry import RetryPolicy
from tests.labeling import fake_engines
from tests.labeling.job_helpers import job_and_attempts, queue_jobs, waters

NO_RETRY = WorkerOptions(retry=RetryPolicy.no_retries(), heartbeat_s=0.5, lease_s=30)


@pytest.fixture
def pyscf_available() -> None:
    if not (availability := get_engine("pyscf").available()).ok:
        pytest.skip(f"pyscf not installed: {availability.reason}")


def _queue_pyscf(url: str, settings: dict[str, object], basis: str = "sto-3g") -> int:
    return queue_jobs(
        url,
        waters(1),
        level=f"HF_{basis}",
        engine="pyscf",
        method="HF",
        basis=basis,
        settings=settings,
    )[0]


def _resubmit(local_env: str, job_id: int, *assignments: str) -> None:
    args = ["jobs", "resubmit", str(job_id)]
    for assignment in assignments:
        args += ["--set", assignment]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "resubmitted 1 job" in result.output


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_non_convergence_then_resubmit_with_more_iterations(local_env: str) -> None:
    job_id = _queue_pyscf(local_env, {"max_iterations": 1})
    report = run_pending_jobs(local_env, options=NO_RETRY)
    assert (report.succeeded, report.failed) == (0, 1)
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.state == JobState.failed and job.error_class == "SCFNotConverged"
    assert attempts[0].log_tail and "cycle" in attempts[0].log_tail.lower()

    _resubmit(local_env, job_id, "max_iterations=50")
    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 1
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.state == JobState.succeeded
    assert [a.state for a in attempts] == [JobState.failed, JobState.succeeded]
    assert [a.settings["max_iterations"] for a in attempts] == [1, 50]
    assert [a.trigger for a in attempts] == ["initial", "resubmit"]
    assert attempts[0].error_class == "SCFNotConverged" and attempts[1].error_class is None

    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id)])
    assert shown.exit_code == 0 and "resubmit" in shown.output
    assert "SCF not converged" in shown.output  # the log tail of the failed attempt


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_retry_policy_rescues_scf_automatically(db_url: str) -> None:
    job_id = _queue_pyscf(db_url, {"max_iterations": 1})
    report = run_pending_jobs(db_url, options=WorkerOptions(heartbeat_s=0.5))
    assert (report.succeeded, report.retried) == (1, 1)
    _, attempts = job_and_attempts(db_url, job_id)
    assert [a.trigger for a in attempts] == ["initial", "retry"]
    assert attempts[1].settings["damping"] == 0.5  # the engine's first rescue step


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_timeout_then_resubmit_with_a_longer_limit(local_env: str) -> None:
    # HF/def2-QZVPP on water takes ~2 s on one core (HF/def2-SVP, ~0.15 s, sometimes
    # finished inside the limit in a warm fork-server child).
    job_id = _queue_pyscf(local_env, {"time_limit_s": 0.2}, basis="def2-QZVPP")
    assert run_pending_jobs(local_env, options=NO_RETRY).failed == 1
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.error_class == "Timeout" and "time limit" in (job.error_message or "")
    assert attempts[0].pid is not None and attempts[0].pid != os.getpid()

    _resubmit(local_env, job_id, "time_limit_s=300")
    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 1
    _, attempts = job_and_attempts(local_env, job_id)
    assert [a.error_class for a in attempts] == ["Timeout", None]


def _kill_engine_process_when_it_starts(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        with transaction(url) as session:
            pid = session.scalar(select(JobAttempt.pid).where(JobAttempt.pid.is_not(None)))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_killed_engine_process_is_a_crash_and_resubmit_succeeds(local_env: str) -> None:
    job_id = _queue_pyscf(local_env, {}, basis="def2-SVP")
    stop = threading.Event()
    killer = threading.Thread(target=_kill_engine_process_when_it_starts, args=(local_env, stop))
    killer.start()
    try:
        report = run_pending_jobs(local_env, options=NO_RETRY)
    finally:
        stop.set()
        killer.join()
    assert report.failed == 1
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.error_class == "EngineCrashed" and "SIGKILL" in (job.error_message or "")
    assert attempts[0].exit_code == -signal.SIGKILL

    _resubmit(local_env, job_id, "conv_tol_hartree=1e-8")
    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 1
    with transaction(local_env) as session:
        assert session.scalar(select(Label.job_id)) == job_id
    _, attempts = job_and_attempts(local_env, job_id)
    assert [a.state for a in attempts] == [JobState.failed, JobState.succeeded]


@pytest.mark.slow
def test_memory_limit_fails_only_that_job(db_url: str, tmp_path: Path) -> None:
    fake_engines.register()
    hog = queue_jobs(
        db_url,
        waters(1, seed=1),
        level="hog",
        engine="memoryhog",
        method="GFN2-xTB",
        settings={"allocate_mb": 4000, "memory_limit_mb": 1500},
    )[0]
    fine = queue_jobs(
        db_url, waters(1, seed=2), level="GFN2-xTB", engine="tblite", method="GFN2-xTB"
    )
    report = run_pending_jobs(db_url, options=NO_RETRY)
    assert (report.succeeded, report.failed) == (1, 1)
    job, _ = job_and_attempts(db_url, hog)
    assert job.error_class == "OutOfMemory" and "out of memory" in (job.error_message or "")
    assert job_and_attempts(db_url, fine[0])[0].state == JobState.succeeded
