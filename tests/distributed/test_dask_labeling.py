"""Labeling and map on a real Dask LocalCluster (2 worker processes) over PostgreSQL.

One cluster serves the module (it takes seconds to start); Prefect runs under
its test harness. Jobs are real GFN2-xTB single points; the killed-worker test
holds one job with a file (:mod:`tests.labeling.fake_engines`) so the kill
lands mid-job deterministically.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from interphase.db.models import JobAttempt, JobState
from interphase.db.session import transaction
from interphase.execution import ExecutorSettings
from interphase.labeling.queue.retry import INTERRUPTED, LEASE_EXPIRED
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.conftest import POSTGRES_ADMIN_URL
from tests.distributed.campaigns import assign_campaign, make_campaign, outcome
from tests.distributed.dask_helpers import FakeEngines, dask_worker_pids
from tests.distributed.mapped import square_late_first
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    ROOT,
    alive,
    attempt_pid,
    job_and_attempts,
    queue_jobs,
    session_processes,
    wait_for,
    waters,
    worker_env,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason="INTERPHASE_TEST_POSTGRES_URL is not set"),
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
]

#: Bound on one labeling run in these tests (s); it ends as soon as the jobs are done.
RUN_LIMIT_S = 240.0


@pytest.fixture(autouse=True)
def _fake_engines() -> None:
    fake_engines.register()  # here to queue their jobs; FakeEngines registers them on workers


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from interphase_flows.runtime import configure_local_prefect

    configure_local_prefect(tmp_path_factory.mktemp("prefect"))
    from prefect.testing.utilities import prefect_test_harness

    from interphase_flows.dask import DaskExecutor

    assert POSTGRES_ADMIN_URL is not None
    with (
        prefect_test_harness(),
        DaskExecutor(ExecutorSettings(kind="dask", workers=2), POSTGRES_ADMIN_URL) as dask_executor,
    ):
        dask_executor.client.register_plugin(FakeEngines())
        yield dask_executor
        seen = dask_worker_pids(dask_executor.client)
    wait_for(lambda: not any(alive(pid) for pid in seen), "the Dask workers to exit")


STOPPED_BY_SIGTERM = """
import sys
from interphase_flows.runtime import configure_local_prefect
from pathlib import Path
Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
configure_local_prefect(Path(sys.argv[2]))
from interphase_flows.dask import DaskExecutor
from interphase.execution import ExecutorSettings
from interphase.labeling.queue.worker_options import WorkerOptions
from interphase.labeling.queue.signals import WorkerInterrupted
from tests.distributed.dask_helpers import FakeEngines
with DaskExecutor(ExecutorSettings(kind="dask", workers=2), sys.argv[1]) as executor:
    executor.client.register_plugin(FakeEngines())
    try:
        executor.run_labeling(None, campaign_id=None, workers=2, options=WorkerOptions(lease_s=60))
    except WorkerInterrupted as stop:
        print(stop, flush=True)
        code = stop.exit_status
sys.exit(code)
"""


def worker_pid(attempt: JobAttempt) -> int:
    """The pid in a worker name ``host:pid:random``."""
    return int(str(attempt.worker).split(":")[1])


def test_two_dask_workers_drain_one_campaign_exactly_once(executor: Any, db_url: str) -> None:
    ids = queue_jobs(db_url, waters(45), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    mine, other = make_campaign(db_url, "mine"), make_campaign(db_url, "other")
    assign_campaign(db_url, ids[:40], mine)
    assign_campaign(db_url, ids[40:], other)
    seen: list[tuple[int, int]] = []
    executor.run_labeling(
        db_url,
        campaign_id=mine,
        workers=2,
        options=WorkerOptions(lease_s=30),
        progress=lambda done, total: seen.append((done, total)),
    )
    states, successes, labels = outcome(db_url, ids)
    assert [states[i] for i in ids[:40]] == [JobState.succeeded] * 40
    assert [states[i] for i in ids[40:]] == [JobState.pending] * 5
    assert all(successes[i] == 1 for i in ids[:40]) and not any(successes[i] for i in ids[40:])
    assert sorted(labels.values()) == [1] * 40
    assert seen and seen[-1] == (40, 40)
    with transaction(db_url) as session:
        attempts = session.scalars(select(JobAttempt).where(JobAttempt.job_id.in_(ids))).all()
        ran_in = {worker_pid(attempt) for attempt in attempts}
    assert ran_in <= dask_worker_pids(executor.client)  # on the Dask workers, not here


def test_a_killed_dask_worker_loses_nothing(executor: Any, db_url: str, tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    held = queue_jobs(
        db_url,
        waters(1, seed=1),
        level="held-GFN2-xTB",
        engine="holding-isolated",
        method="GFN2-xTB",
        settings={"hold_file": str(hold)},
    )
    others = queue_jobs(
        db_url, waters(8, seed=2), level="GFN2-xTB", engine="tblite", method="GFN2-xTB"
    )
    campaign = make_campaign(db_url, "killed")
    assign_campaign(db_url, held + others, campaign)
    before = dask_worker_pids(executor.client)
    errors: list[BaseException] = []

    def label() -> None:
        try:
            executor.run_labeling(
                db_url, campaign_id=campaign, workers=2, options=WorkerOptions(lease_s=5)
            )
        except BaseException as error:  # the main thread asserts on it
            errors.append(error)

    runner = threading.Thread(target=label)
    runner.start()
    try:
        wait_for(Path(f"{hold}.started").exists, "the held job to start")
        with transaction(db_url) as session:
            first = session.scalars(select(JobAttempt).where(JobAttempt.job_id == held[0])).one()
        victim, calculation = worker_pid(first), first.pid
        assert victim in before and calculation is not None and calculation != victim
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), "the killed Dask worker to go")
        wait_for(lambda: not alive(calculation), "its calculation process to die with it")
        hold.unlink()  # the rerun goes straight through
    finally:
        hold.unlink(missing_ok=True)
        runner.join(timeout=RUN_LIMIT_S)
    assert not runner.is_alive(), "labeling did not finish"
    assert not errors, errors
    states, successes, labels = outcome(db_url, held + others)
    assert set(states.values()) == {JobState.succeeded}
    assert set(successes.values()) == {1} and len(successes) == 9
    assert set(labels.values()) == {1} and len(labels) == 9
    with transaction(db_url) as session:
        attempts = session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == held[0]).order_by(JobAttempt.number)
        ).all()
        assert [a.error_class for a in attempts] == [LEASE_EXPIRED, None]
        assert worker_pid(attempts[1]) != victim


def test_dask_map_keeps_the_input_order(executor: Any, db_url: str) -> None:
    items = [(x, 6) for x in range(6)]  # earlier items sleep longer, so finish last
    results = executor.map(square_late_first, items)
    assert [value for value, _ in results] == [0, 1, 4, 9, 16, 25]
    assert {pid for _, pid in results} <= dask_worker_pids(executor.client)


def test_sigterm_puts_the_dask_workers_jobs_back_and_leaves_nothing_running(
    db_url: str, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    held = queue_jobs(
        db_url,
        waters(1, seed=3),
        level="held-GFN2-xTB",
        engine="holding-isolated",
        method="GFN2-xTB",
        settings={"hold_file": str(hold)},
    )
    env = worker_env(db_url)
    process = subprocess.Popen(
        [sys.executable, "-c", STOPPED_BY_SIGTERM, db_url, str(tmp_path / "prefect")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def started() -> bool:
        assert process.poll() is None, process.communicate()[1]
        return Path(f"{hold}.started").exists()

    try:
        wait_for(started, "the held job to start")
        calculation = wait_for(lambda: attempt_pid(db_url, held[0]), "its calculation's pid")
        process.send_signal(signal.SIGTERM)  # the executor's process only, as a batch system does
        out, err = process.communicate(timeout=RUN_LIMIT_S)
    finally:
        hold.unlink(missing_ok=True)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "interrupted by SIGTERM" in out
    job, attempts = job_and_attempts(db_url, held[0])
    assert job.state is JobState.pending  # released at once, not after its 60 s lease
    assert [a.error_class for a in attempts] == [INTERRUPTED]
    assert not alive(calculation)
    wait_for(lambda: not session_processes(process.pid), "every process of the run to exit")
