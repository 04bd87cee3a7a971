"""Nothing a worker started outlives it (issue 20, item 0).

Reproduced: under CPU load a ``jobs run`` worker stopped by SIGTERM had exited
while a process of its session was still alive. A worker sent its signals and
exited without waiting: the fork server and resource tracker that
multiprocessing starts only exit after their starter has, and a calculation
still starting (not yet in its own process group) was missed by the kill of
its group and computed on. Each worker here is a real process in its own
session; a fake engine whose process waits before it starts stands in for a
loaded machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from interphase.db.models import JobState
from interphase.labeling.isolation.forkserver import reap_child
from interphase.labeling.queue.retry import INTERRUPTED
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    FAKE_ENGINE_WORKER,
    ROOT,
    alive,
    attempt_pid,
    job_and_attempts,
    queue_jobs,
    session_processes,
    start_worker,
    wait_for,
    waters,
    worker_env,
)

#: Drains the queue, then prints the live processes of its session other than itself.
DRAIN_THEN_LIST = """
import os, sys
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.labeling.job_helpers import session_processes
report = run_pending_jobs(sys.argv[1], options=WorkerOptions(lease_s=60))
print(report.succeeded, sorted(set(session_processes(os.getpid())) - {os.getpid()}))
"""


def _queue_slow_start(url: str, settings: dict[str, object] | None = None) -> int:
    fake_engines.register()
    return queue_jobs(
        url,
        waters(1, seed=7),
        level="slow-start",
        engine="slow-start",
        method="GFN2-xTB",
        settings=settings,
    )[0]


def test_run_pending_jobs_leaves_no_process_behind(db_url: str) -> None:
    # A time limit runs GFN2-xTB in a process of its own, from the fork server.
    queue_jobs(
        db_url,
        waters(2),
        level="GFN2-xTB",
        engine="tblite",
        method="GFN2-xTB",
        settings={"time_limit_s": 300},
    )
    drained = subprocess.run(
        [sys.executable, "-c", DRAIN_THEN_LIST, db_url],
        cwd=ROOT,
        env=worker_env(db_url),
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert drained.returncode == 0, drained.stderr
    # Was "2 [fork server, resource tracker]": both live until the worker exits.
    assert drained.stdout.split(None, 1) == ["2", "[]\n"]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_worker_stopped_while_its_calculation_starts_kills_it_and_exits_last(
    db_url: str, tmp_path: Path, stop: signal.Signals
) -> None:
    job_id = _queue_slow_start(db_url)
    hold = tmp_path / "slow-start"
    hold.touch()
    worker = start_worker(
        db_url, script=FAKE_ENGINE_WORKER, **{fake_engines.SLOW_START_FILE: str(hold)}
    )
    try:
        wait_for(Path(f"{hold}.started").exists, "the calculation process to begin starting")
        child = int(wait_for(lambda: attempt_pid(db_url, job_id), "its pid"))
        worker.send_signal(stop)
        # Not communicate(): a survivor would hold the worker's output open.
        try:
            status = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:  # was so: it waited on a calculation never killed
            pytest.fail(f"the worker did not exit; its calculation is alive: {alive(child)}")
        leftover = session_processes(worker.pid)  # the moment its exit is seen
        assert not alive(child)  # was alive: the kill of its (not yet made) group missed it
        assert not leftover
    finally:
        hold.unlink()  # lets a survivor of a failed run go on, and end
        _, err = worker.communicate(timeout=300)
    assert status == 128 + stop, err
    job, attempts = job_and_attempts(db_url, job_id)
    assert job.state == JobState.pending and attempts[0].error_class == INTERRUPTED
    assert attempts[0].exit_code == -signal.SIGKILL  # was None: no exit status came
    assert f"engine process {child} was killed by SIGKILL" in (attempts[0].log_tail or "")


def test_a_child_that_does_not_exit_in_its_grace_is_killed_and_reaped() -> None:
    stubborn = os.posix_spawn("/bin/sleep", ["sleep", "300"], os.environ)
    assert reap_child(stubborn, grace_s=0.2) == -signal.SIGKILL
    assert not alive(stubborn)
    prompt = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ)
    assert reap_child(prompt, grace_s=60) == 3
    spawned = subprocess.run(
        ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True
    )
    grandchild = int(spawned.stdout)
    try:
        assert reap_child(grandchild, grace_s=0.1) is None  # not this process's child
        assert alive(grandchild)  # and left alone
    finally:
        os.kill(grandchild, signal.SIGKILL)


def test_waiting_on_processes_works_with_descriptors_above_1024() -> None:
    """A long-lived worker or test session holds high-numbered descriptors: select(2)
    refused them (ValueError: filedescriptor out of range), poll(2) does not."""
    import resource

    from interphase.labeling.isolation.process_group import wait_exited

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is below 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    null = os.open(os.devnull, os.O_RDONLY)
    spare = [os.dup2(null, fd) for fd in range(1030, 1040)]  # pidfds opened now are not lower
    padding = [os.dup(null) for _ in range(1030)]  # every low number taken
    try:
        stubborn = os.posix_spawn("/bin/sleep", ["sleep", "300"], os.environ)
        assert reap_child(stubborn, grace_s=0.2) == -signal.SIGKILL
        quick = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 0"], os.environ)
        assert wait_exited([quick], timeout_s=30)
        os.waitpid(quick, 0)
    finally:
        for fd in (*padding, *spare, null):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
