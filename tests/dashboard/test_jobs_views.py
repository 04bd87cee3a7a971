"""The jobs table: filters, keyset pages, failure groups and stuck work (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from interphase.dashboard.queries.jobs import PAGE_SIZE, stuck_jobs
from interphase.dashboard.templating import as_utc
from interphase.db.models import JobState
from interphase.db.session import transaction
from interphase.labeling.queue.run import run_pending_jobs
from tests.dashboard.campaign_data import (
    NO_RETRY,
    create_campaign,
    failed_waters,
    queue_waters,
    start_iteration,
)
from tests.labeling import fake_engines
from tests.labeling.job_helpers import job_and_attempts, queue_jobs, waters

ROOT = Path(__file__).resolve().parents[2]
JOB_ROW = re.compile(r'<tr data-job="(\d+)" data-state="(\w+)">')


def shown(html: str) -> list[tuple[int, str]]:
    """(job id, state) of every row of the jobs table, in page order."""
    return [(int(i), state) for i, state in JOB_ROW.findall(html)]


def test_keyset_pages_cover_every_job_once(client: TestClient, local_env: str) -> None:
    ids = queue_waters(local_env, 2 * PAGE_SIZE + 7, seed=1)
    first = client.get("/jobs").text
    page_ids = [i for i, _ in shown(first)]
    assert page_ids == sorted(ids, reverse=True)[:PAGE_SIZE]  # newest first
    assert f"{PAGE_SIZE} of {len(ids)} jobs" in first
    seen = list(page_ids)
    html = first
    while (older := re.search(r'href="/jobs\?before=(\d+)"', html)) is not None:
        html = client.get(f"/jobs?before={older.group(1)}").text
        seen += [i for i, _ in shown(html)]
    assert seen == sorted(ids, reverse=True)  # every job once, in a stable order
    newer = re.search(r'href="/jobs\?after=(\d+)"', html)
    assert newer is not None
    back = [i for i, _ in shown(client.get(f"/jobs?after={newer.group(1)}").text)]
    assert back == sorted(ids, reverse=True)[PAGE_SIZE : 2 * PAGE_SIZE]


@pytest.mark.slow
def test_filters_and_failure_groups(client: TestClient, local_env: str) -> None:
    campaign = create_campaign(local_env, "filters", {}, ["GFN2-xTB"])
    first, second = start_iteration(local_env, campaign), start_iteration(local_env, campaign)
    good = queue_waters(local_env, 3, seed=2, campaign_id=campaign, iteration_id=first)
    run_pending_jobs(local_env, options=NO_RETRY)
    bad = failed_waters(local_env, 2, seed=3, campaign_id=campaign, iteration_id=second)
    other = queue_waters(local_env, 2, seed=4)  # no campaign, pending
    invalid = queue_waters(local_env, 1, seed=5, level="GFN9-xTB")
    run_pending_jobs(local_env, options=NO_RETRY, level_id=None, engine=None)
    other_failed = failed_waters(local_env, 1, seed=6)

    def ids(query: str) -> set[int]:
        response = client.get(f"/jobs?{query}")
        assert response.status_code == 200, response.text
        return {i for i, _ in shown(response.text)}

    assert ids(f"campaign={campaign}") == set(good + bad)
    assert ids(f"iteration={second}") == set(bad)
    assert ids("state=failed") == set(bad + invalid + other_failed)
    assert ids("error_class=InvalidInput") == set(invalid)
    assert ids("level=GFN9-xTB") == set(invalid)
    assert ids("engine=tblite&state=succeeded") == set(good + other)
    assert ids("message=not+CONVERGED") == set(bad + other_failed)  # substring, any case
    assert ids("message=100%25") == set()  # LIKE wildcards are taken literally
    assert ids(f"campaign={campaign}&message=converged") == set(bad)

    page = client.get("/jobs").text
    groups = re.findall(r'<td class="num"><a href="[^"]*">(\d+)</a></td>', page)
    assert groups == ["3", "1"]  # SCFNotConverged x3 first, then InvalidInput x1
    scoped = client.get(f"/jobs?campaign={campaign}").text
    assert re.findall(r'<td class="num"><a href="[^"]*">(\d+)</a></td>', scoped) == ["2"]
    chips = dict(
        (state, int(n))
        for n, state in re.findall(r'<span class="n">(\d+)</span><span class="label">(\w+)', page)
    )
    assert chips == {"pending": 0, "running": 0, "succeeded": 5, "failed": 4, "cancelled": 0}


WORKER = """
import sys
from tests.labeling import fake_engines
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
fake_engines.register()
run_pending_jobs(sys.argv[1], options=WorkerOptions(lease_s=float(sys.argv[2]), heartbeat_s=1.0))
"""


@pytest.mark.slow
def test_a_killed_workers_job_shows_as_stuck(
    client: TestClient, local_env: str, tmp_path: Path
) -> None:
    fake_engines.register()  # the holding engine's settings are validated here too
    hold = tmp_path / "hold"
    hold.touch()
    (job_id,) = queue_jobs(
        local_env,
        waters(1),
        level="held",
        engine="holding",
        method="GFN2-xTB",
        settings={"hold_file": str(hold)},
    )
    lease_s = 5.0  # the shortest lease a worker accepts
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, local_env, str(lease_s)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 60
        while job_and_attempts(local_env, job_id)[0].state != JobState.running:
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.1)
        job, _ = job_and_attempts(local_env, job_id)
        heartbeat = as_utc(job.heartbeat_at)
        assert heartbeat is not None
        with transaction(local_env) as session:  # a fresh heartbeat is healthy work
            assert stuck_jobs(session, now=heartbeat + timedelta(seconds=0.1)) == []
            (near,) = stuck_jobs(session, now=heartbeat + timedelta(seconds=0.6 * lease_s))
            assert near.id == job_id and not near.expired
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        hold.unlink(missing_ok=True)
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    deadline = time.monotonic() + 60
    while "expired" not in (stuck := client.get("/jobs/live").text.split("Stuck work")[1]):
        assert time.monotonic() < deadline, stuck
        time.sleep(0.5)
    assert f'href="/jobs/{job_id}"' in stuck and job.worker is not None and job.worker in stuck
