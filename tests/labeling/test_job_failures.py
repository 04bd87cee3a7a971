"""Failed jobs: the right error class, their own exit code and log tail, and resubmission.

Real PySCF runs provoke non-convergence (one SCF iteration), a kill of the
engine process mid-SCF and an out-of-memory start (issue 12, items 7-10). A
fake engine that holds until released makes a timeout deterministic (it used
to be HF/def2-QZVPP against a 0.2 s limit), and provokes a memory blow-up.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import JobState, Label
from interphase.db.session import transaction
from interphase.labeling.engines import get_engine
from interphase.labeling.jobs import JobFilter, resubmit_jobs
from interphase.labeling.queue.retry import RetryPolicy
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    alive,
    attempt_pid,
    job_and_attempts,
    queue_jobs,
    wait_for,
    waters,
)

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


def _queue_held(url: str, hold: Path, settings: dict[str, object]) -> int:
    fake_engines.register()
    hold.touch()
    return queue_jobs(
        url,
        waters(1, seed=5),
        level="held",
        engine="holding-isolated",
        method="GFN2-xTB",
        settings={"hold_file": str(hold), **settings},
    )[0]


def _resubmit(job_id: int, *assignments: str) -> None:
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
    assert attempts[0].exit_code == 0  # the child replied and exited by itself

    _resubmit(job_id, "max_iterations=50")
    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 1
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.state == JobState.succeeded
    assert [a.state for a in attempts] == [JobState.failed, JobState.succeeded]
    assert [a.settings["max_iterations"] for a in attempts] == [1, 50]
    assert [a.trigger for a in attempts] == ["initial", "resubmit"]
    assert attempts[0].error_class == "SCFNotConverged" and attempts[1].error_class is None
    assert [a.exit_code for a in attempts] == [0, 0]
    assert "converged SCF energy" in (attempts[1].log_tail or "")

    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id)])
    assert shown.exit_code == 0 and "resubmit" in shown.output
    first, second = shown.output.split("log tail of attempt 2")
    assert "log tail of attempt 1" in first and "SCF not converged" in first  # its own tail
    assert "converged SCF energy" in second and "SCF not converged" not in second


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_retry_policy_rescues_scf_automatically(db_url: str) -> None:
    job_id = _queue_pyscf(db_url, {"max_iterations": 1})
    report = run_pending_jobs(db_url, options=WorkerOptions(heartbeat_s=0.5, lease_s=30))
    assert (report.succeeded, report.retried) == (1, 1)
    _, attempts = job_and_attempts(db_url, job_id)
    assert [a.trigger for a in attempts] == ["initial", "retry"]
    assert attempts[1].settings["damping"] == 0.5  # the engine's first rescue step


@pytest.mark.slow
def test_timeout_keeps_exit_code_and_log_then_resubmit_with_a_longer_limit(
    local_env: str, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    job_id = _queue_held(local_env, hold, {"time_limit_s": 1})
    assert run_pending_jobs(local_env, options=NO_RETRY).failed == 1  # held: never in time
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.error_class == "Timeout"
    assert "time limit of 1 s and was killed" in (job.error_message or "")
    assert attempts[0].pid is not None and attempts[0].pid != os.getpid()
    assert attempts[0].exit_code == -signal.SIGKILL
    assert f"holding while {hold}" in (attempts[0].log_tail or "")

    _resubmit(job_id, "time_limit_s=300")
    hold.unlink()
    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 1
    _, attempts = job_and_attempts(local_env, job_id)
    assert [a.error_class for a in attempts] == ["Timeout", None]
    assert [a.exit_code for a in attempts] == [-signal.SIGKILL, 0]


@pytest.mark.slow
def test_a_resubmit_starts_a_fresh_retry_budget(db_url: str, tmp_path: Path) -> None:
    job_id = _queue_held(db_url, tmp_path / "hold", {"time_limit_s": 0.5})
    options = WorkerOptions(heartbeat_s=0.5, lease_s=30)  # Timeout: 2 attempts per budget
    run_pending_jobs(db_url, options=options)
    job, attempts = job_and_attempts(db_url, job_id)
    assert job.state == JobState.failed and len(attempts) == 2
    with transaction(db_url) as session:
        resubmit_jobs(session, JobFilter(ids=(job_id,)))
    run_pending_jobs(db_url, options=options)
    job, attempts = job_and_attempts(db_url, job_id)
    assert job.state == JobState.failed
    assert [a.trigger for a in attempts] == ["initial", "retry", "resubmit", "retry"]
    assert [a.settings["time_limit_s"] for a in attempts] == [0.5, 1.0, 1.0, 2.0]
    assert all(a.error_class == "Timeout" for a in attempts)  # the history is kept


def _kill_once_holding(started: Path, url: str, job_id: int, killed: list[int]) -> None:
    wait_for(started.exists, "the engine to hold")
    pid = int(wait_for(lambda: attempt_pid(url, job_id), "the engine's pid"))
    killed.append(pid)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("memory_limit", "error_class"), [(None, "EngineCrashed"), (4000, "OutOfMemory")]
)
def test_a_killed_engine_process_keeps_its_exit_code_and_log(
    db_url: str, tmp_path: Path, memory_limit: int | None, error_class: str
) -> None:
    hold = tmp_path / "hold"
    settings = {} if memory_limit is None else {"memory_limit_mb": memory_limit}
    job_id = _queue_held(db_url, hold, settings)
    pid_of: list[int] = []
    killer = threading.Thread(
        target=_kill_once_holding, args=(Path(f"{hold}.started"), db_url, job_id, pid_of)
    )
    killer.start()
    try:
        report = run_pending_jobs(db_url, options=NO_RETRY)
    finally:
        killer.join()
    assert report.failed == 1 and pid_of
    job, attempts = job_and_attempts(db_url, job_id)
    assert job.error_class == error_class and "killed by signal SIGKILL" in (
        job.error_message or ""
    )
    assert attempts[0].exit_code == -signal.SIGKILL and attempts[0].pid == pid_of[0]
    assert f"holding while {hold}" in (attempts[0].log_tail or "")  # a killed run's tail too


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_a_pyscf_child_killed_mid_scf_keeps_its_scf_log(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the child's log goes
    job_id = _queue_pyscf(db_url, {"density_fit": False}, basis="def2-QZVPP")

    def kill_mid_scf() -> None:
        def log() -> str:
            logs = list(tmp_path.glob("interphase-job-*/child.log"))
            return logs[0].read_text(errors="replace") if logs else ""

        wait_for(lambda: "cycle= 1" in log(), "the SCF to iterate")
        os.kill(int(wait_for(lambda: attempt_pid(db_url, job_id), "the pid")), signal.SIGKILL)

    killer = threading.Thread(target=kill_mid_scf)
    killer.start()
    try:
        assert run_pending_jobs(db_url, options=NO_RETRY).failed == 1
    finally:
        killer.join()
    job, attempts = job_and_attempts(db_url, job_id)
    assert job.error_class == "EngineCrashed" and attempts[0].exit_code == -signal.SIGKILL
    assert "cycle= 1" in (attempts[0].log_tail or "")  # PySCF logs where the tail is read
    assert not alive(attempts[0].pid or 0)


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_pyscf_under_a_tiny_memory_limit_is_out_of_memory_and_retried_with_more(
    db_url: str,
) -> None:
    job_id = _queue_pyscf(db_url, {"memory_limit_mb": 300}, basis="def2-SVP")
    # 10x: the retry's 3000 MB is ample on any machine, whatever PySCF takes loaded.
    policy = RetryPolicy(memory_growth=10.0)
    report = run_pending_jobs(db_url, options=WorkerOptions(retry=policy, lease_s=30))
    assert (report.succeeded, report.retried) == (1, 1)
    _, attempts = job_and_attempts(db_url, job_id)
    assert attempts[0].error_class == "OutOfMemory"  # was EngineUnavailable, "pip install"
    assert "larger memory_limit_mb" in (attempts[0].error_message or "")
    assert "pip install" not in (attempts[0].error_message or "")
    assert [a.settings["memory_limit_mb"] for a in attempts] == [300, 3000]
    with transaction(db_url) as session:
        label = session.scalars(select(Label)).one()
    budget = label.provenance["settings"]["max_memory_mb"]  # PySCF planned within the limit
    assert 64 <= budget <= 3000 - 256


@pytest.mark.slow
def test_memory_blow_up_fails_only_that_job(db_url: str) -> None:
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
    job, attempts = job_and_attempts(db_url, hog)
    assert job.error_class == "OutOfMemory" and "out of memory" in (job.error_message or "")
    assert "MemoryError" in (attempts[0].log_tail or "")
    assert job_and_attempts(db_url, fine[0])[0].state == JobState.succeeded
