"""A timed-out attempt keeps its exit code and a log tail (issue 20, item 12).

Reproduced: on a loaded machine, timed-out PySCF attempts showed ``exit None``
in ``jobs show`` and some had no log tail at all. A calculation still starting
when its time limit passed had not made its own process group yet, so the kill
of the group missed it: no exit status came within the 5 s the worker waited,
and the calculation, never killed, had written nothing. Every isolated attempt
now ends its log with a line saying how its process ended.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import JobState
from interphase.labeling.engines import get_engine
from interphase.labeling.queue.retry import RetryPolicy
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    FAKE_ENGINE_WORKER,
    job_and_attempts,
    job_state,
    queue_jobs,
    start_worker,
    wait_for,
    waters,
)

NO_RETRY = WorkerOptions(retry=RetryPolicy.no_retries(), heartbeat_s=0.5, lease_s=30)


def _killed_by_its_time_limit(log_tail: str | None, pid: int | None, limit_s: float) -> bool:
    ending = f"[interphase] engine process {pid} was killed by SIGKILL (exit code -9) after"
    return ending in (log_tail or "") and f"(time limit of {limit_s:g} s exceeded)" in (
        log_tail or ""
    )


def _shown(job_id: int) -> str:
    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id)])
    assert shown.exit_code == 0, shown.output
    return shown.output


@pytest.mark.slow
def test_a_calculation_timed_out_while_starting_keeps_exit_code_and_log_tail(
    local_env: str, tmp_path: Path
) -> None:
    fake_engines.register()
    (job_id,) = queue_jobs(
        local_env,
        waters(1, seed=8),
        level="slow-start",
        engine="slow-start",
        method="GFN2-xTB",
        settings={"time_limit_s": 1},
    )
    hold = tmp_path / "slow-start"
    hold.touch()  # its process never gets past starting: both attempts time out
    worker = start_worker(
        local_env, script=FAKE_ENGINE_WORKER, **{fake_engines.SLOW_START_FILE: str(hold)}
    )
    try:
        wait_for(lambda: job_state(local_env, job_id) == JobState.failed, "both attempts")
    finally:
        hold.unlink()  # lets a survivor of a failed run go on, and end
        _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    _, attempts = job_and_attempts(local_env, job_id)
    assert [a.error_class for a in attempts] == ["Timeout", "Timeout"]
    assert [a.exit_code for a in attempts] == [-signal.SIGKILL] * 2  # was [None, None]
    for attempt, limit_s in zip(attempts, (1, 2), strict=True):  # retried with twice the limit
        assert _killed_by_its_time_limit(attempt.log_tail, attempt.pid, limit_s), attempt.log_tail
    shown = _shown(job_id)
    assert shown.count("exit -9") == 2 and "exit None" not in shown
    assert shown.count("[interphase] engine process") == 2  # each attempt's own tail


@pytest.mark.slow
def test_a_pyscf_timeout_keeps_exit_code_and_says_how_it_ended(local_env: str) -> None:
    if not (availability := get_engine("pyscf").available()).ok:
        pytest.skip(f"pyscf not installed: {availability.reason}")
    # HF/def2-QZVPP without density fitting: about 9 s of SCF, against a 1 s limit.
    (job_id,) = queue_jobs(
        local_env,
        waters(1, seed=9),
        level="HF_def2-QZVPP",
        engine="pyscf",
        method="HF",
        basis="def2-QZVPP",
        settings={"density_fit": False, "time_limit_s": 1},
    )
    assert run_pending_jobs(local_env, options=NO_RETRY).failed == 1
    job, (attempt,) = job_and_attempts(local_env, job_id)
    assert job.error_class == "Timeout" and attempt.exit_code == -signal.SIGKILL
    assert _killed_by_its_time_limit(attempt.log_tail, attempt.pid, 1), attempt.log_tail
    shown = _shown(job_id)
    assert "exit -9" in shown and "[interphase] engine process" in shown
