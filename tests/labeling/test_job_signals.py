"""A worker killed or stopped mid-calculation, with real PySCF (issue 12, items 3-5).

Reproduced: after ``kill -9`` of a ``jobs run --engine pyscf`` worker its DFT
child kept computing (its parent is the fork server, so "die with the parent"
never fired); SIGINT/SIGTERM left the job ``running`` for the rest of its lease;
``--lease-s 0`` was accepted. Each worker here is a real ``interphase jobs run``
process in its own session, so every process it started can be found.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import JobState, Label
from interphase.db.session import transaction
from interphase.labeling.engines import get_engine
from interphase.labeling.queue.retry import INTERRUPTED, LEASE_EXPIRED
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.labeling.job_helpers import (
    alive,
    attempt_pid,
    job_and_attempts,
    job_state,
    queue_jobs,
    session_processes,
    start_cli,
    wait_for,
    waters,
)

#: HF/def2-QZVPP without density fitting: about 9 s of SCF on one core, so the
#: calculation is certainly still running when it is killed a moment after it starts.
LONG_SCF = {"density_fit": False}
#: Within this the worker's death must have killed its calculation: the watchdog does
#: it in milliseconds (0.07 s measured), while left alone it would compute ~9 s more.
ORPHAN_DEADLINE_S = 3.0


@pytest.fixture
def pyscf_available() -> None:
    if not (availability := get_engine("pyscf").available()).ok:
        pytest.skip(f"pyscf not installed: {availability.reason}")


def _queue_long(url: str, n: int = 1) -> list[int]:
    return queue_jobs(
        url,
        waters(n, seed=11),
        level="HF_def2-QZVPP",
        engine="pyscf",
        method="HF",
        basis="def2-QZVPP",
        settings=LONG_SCF,
    )


def _calculation_started(url: str, job_id: int) -> int:
    pid = wait_for(lambda: attempt_pid(url, job_id), f"job {job_id}'s calculation to start")
    assert alive(pid), "the calculation ended before the test could stop it"
    return int(pid)


def _run(url: str, tmp_path: Path, *args: str, lease_s: float = 5) -> subprocess.Popen[str]:
    command = ("jobs", "run", "--lease-s", str(lease_s), *args)
    return start_cli(url, *command, data_dir=tmp_path / "data")


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_kill_9_of_a_worker_kills_its_calculation_and_the_job_runs_once_elsewhere(
    local_env: str, tmp_path: Path
) -> None:
    (job_id,) = _queue_long(local_env)
    worker = _run(local_env, tmp_path, "--engine", "pyscf")
    child = _calculation_started(local_env, job_id)
    worker.kill()  # SIGKILL: no handler, no cleanup in the worker
    worker.wait(timeout=60)  # not communicate(): the fork server holds its stdout open
    wait_for(lambda: not alive(child), "the orphaned calculation to die", ORPHAN_DEADLINE_S)
    wait_for(lambda: not session_processes(worker.pid), "every process of the worker to end")
    worker.communicate(timeout=60)

    options = WorkerOptions(lease_s=30, heartbeat_s=1)
    wait_for(
        lambda: (
            run_pending_jobs(local_env, options=options).succeeded
            or job_state(local_env, job_id) == JobState.succeeded
        ),
        "the job to be rerun after the lease",
    )
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.state == JobState.succeeded
    assert [a.error_class for a in attempts] == [LEASE_EXPIRED, None]
    assert attempts[0].pid == child and attempts[1].pid != child
    with transaction(local_env) as session:
        assert session.scalars(select(Label.job_id)).all() == [job_id]  # labeled exactly once


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_worker_stops_its_calculation_and_releases_the_job_at_once(
    local_env: str, tmp_path: Path, stop: signal.Signals, status: int
) -> None:
    (job_id,) = _queue_long(local_env)
    worker = _run(local_env, tmp_path)
    child = _calculation_started(local_env, job_id)
    worker.send_signal(stop)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == status, err
    assert "Traceback" not in err
    assert f"interrupted by {stop.name}; job {job_id} put back to pending" in err
    assert not alive(child)
    job, attempts = job_and_attempts(local_env, job_id)
    assert job.state == JobState.pending and job.lease_expires_at is None  # not after the lease
    assert job.requeued_by == "interrupted" and job.budget_start_attempt == 1  # not counted
    assert attempts[0].error_class == INTERRUPTED and attempts[0].finished_at is not None
    assert attempts[0].exit_code == -signal.SIGKILL and attempts[0].pid == child
    assert not session_processes(worker.pid)


def _stopped_workers(url: str, tmp_path: Path, stop: signal.Signals, group: bool) -> str:
    ids = _queue_long(url, 2)
    parent = _run(url, tmp_path, "--workers", "2", "--engine", "pyscf")
    children = [_calculation_started(url, job_id) for job_id in ids]
    if group:  # Ctrl-C: the terminal signals the whole foreground process group
        os.killpg(parent.pid, stop)
    else:  # SIGTERM from a scheduler: only the parent; it forwards
        parent.send_signal(stop)
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 128 + stop, err
    assert "Traceback" not in err
    assert not any(alive(child) for child in children)
    for job_id in ids:
        job, attempts = job_and_attempts(url, job_id)
        assert job.state == JobState.pending
        assert [a.error_class for a in attempts] == [INTERRUPTED]
    wait_for(lambda: not session_processes(parent.pid), "every worker process to end")
    return err


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_sigterm_to_a_multi_worker_run_is_forwarded_to_every_worker(
    local_env: str, tmp_path: Path
) -> None:
    _stopped_workers(local_env, tmp_path, signal.SIGTERM, group=False)


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_ctrl_c_of_a_multi_worker_run_releases_every_job(local_env: str, tmp_path: Path) -> None:
    _stopped_workers(local_env, tmp_path, signal.SIGINT, group=True)


@pytest.mark.slow
@pytest.mark.usefixtures("pyscf_available")
def test_a_crashed_worker_is_one_line_and_a_failed_run(local_env: str, tmp_path: Path) -> None:
    ids = _queue_long(local_env, 2)
    # A long lease: the surviving worker finishes its own job and exits rather than
    # waiting to rerun the dead one's.
    parent = _run(local_env, tmp_path, "--workers", "2", "--engine", "pyscf", lease_s=120)
    children = [_calculation_started(local_env, job_id) for job_id in ids]
    workers = _worker_pids(parent.pid)
    os.kill(min(workers), signal.SIGKILL)
    _, err = parent.communicate(timeout=180)
    assert parent.returncode == 1, err
    assert "1 of 2 workers failed (killed by SIGKILL)" in err and "Traceback" not in err
    wait_for(lambda: not any(alive(child) for child in children), "the calculations to end")


def _worker_pids(parent: int) -> set[int]:
    """The worker processes (children of ``parent`` running Python's spawn main)."""
    found = set()
    for pid in session_processes(parent):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if int(stat[1]) == parent and b"spawn_main" in cmdline:
            found.add(pid)
    assert len(found) == 2, found
    return found


def test_a_lease_of_zero_is_refused_in_one_line(local_env: str) -> None:
    for lease in ("0", "2", "-1", "nan"):
        refused = CliRunner().invoke(app, ["jobs", "run", "--lease-s", lease])
        assert refused.exit_code == 2, refused.output
        assert refused.output.startswith("error: lease_s=") and "Traceback" not in refused.output
        assert len(refused.output.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="at least 3 heartbeats"):
        WorkerOptions(lease_s=10, heartbeat_s=5)
