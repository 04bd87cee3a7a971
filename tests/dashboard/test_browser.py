"""The dashboard in a real browser: Debian's Chromium through Playwright, a real server process.

The server is ``interphase dashboard`` in a subprocess over a database filled
with real data (GFN2-xTB jobs through the queue, real failures, a GP, trained
models). Pages are screenshotted into each test's ``tmp_path``; set
``INTERPHASE_SCREENSHOTS_DIR`` to also copy them there (the README's come from
``examples/screenshots/``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from interphase.db.models import JobState
from interphase.labeling.queue.run import run_pending_jobs
from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    COUNT_SWAPS,
    PageProblems,
    chromium_or_skip,
    dashboard_server,
    screenshot,
)
from tests.dashboard.campaign_data import (
    NO_RETRY,
    build_campaign,
    create_campaign,
    failed_waters,
    queue_waters,
    set_error_message,
)
from tests.dashboard.conftest import TOKEN
from tests.labeling.job_helpers import job_and_attempts

pytestmark = pytest.mark.slow

HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
#: Generous: waits are on observable state, this only bounds a broken run.
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server_env(local_env: str, tmp_path: Path) -> dict[str, str]:
    return {
        "INTERPHASE_DATABASE_URL": local_env,
        "INTERPHASE_DATA_DIR": str(tmp_path / "data"),
        "INTERPHASE_DASHBOARD_TOKEN": TOKEN,
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, PageProblems]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    problems = PageProblems()
    problems.watch(opened)
    yield opened, problems
    context.close()


def test_every_page_in_the_browser(
    local_env: str, server_env: dict[str, str], tmp_path: Path, page: tuple[Any, PageProblems]
) -> None:
    tab, problems = page
    data = build_campaign(local_env, tmp_path / "data" / "artifacts")
    create_campaign(local_env, HOSTILE, {}, ["GFN2-xTB"])
    set_error_message(local_env, data.failed_job_ids[0], f"stored text {HOSTILE}")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with dashboard_server(server_env) as server:
        tab.goto(server.url + "/")
        assert tab.locator("#campaigns-table").inner_text().count("li-clusters") == 1
        assert HOSTILE in tab.locator("#campaigns-table").inner_text()  # shown as text
        screenshot(tab, shots, "campaigns")

        tab.goto(server.url + "/jobs")
        tab.wait_for_selector("#jobs-table tbody tr[data-job]")
        failures = tab.locator("section.card", has_text="Failures by error")
        assert "SCFNotConverged" in failures.inner_text()
        screenshot(tab, shots, "jobs")
        tab.goto(server.url + f"/jobs?state=failed&campaign={data.campaign_id}")
        rows = tab.locator("#jobs-table tbody tr[data-state=failed]")
        assert rows.count() == len(data.failed_job_ids) + len(data.invalid_job_ids)
        screenshot(tab, shots, "jobs-failed")

        tab.goto(server.url + f"/jobs/{data.failed_job_ids[0]}")
        assert HOSTILE in tab.locator("#job-live").inner_text()
        tab.locator("#attempts details summary").first.click()
        assert "max_iterations" in tab.locator("#attempts").inner_text()
        screenshot(tab, shots, "job")

        tab.goto(server.url + f"/structures/{data.cluster_ids[0]}")
        tab.wait_for_selector("#viewer canvas")  # 3Dmol drew into the page
        assert "Lineage up" in tab.content() and "training run 1" in tab.content()
        screenshot(tab, shots, "structure")
        tab.goto(server.url + f"/structures/{data.augmented_ids[0]}")
        tab.wait_for_selector("#viewer canvas")
        assert tab.locator("#lineage-up a.step").count() == 1
        screenshot(tab, shots, "structure-augmented")
        tab.goto(server.url + f"/structures/{data.periodic_id}")
        tab.wait_for_selector("#viewer canvas")  # with the cell drawn as lines
        assert "periodic ppp" in tab.locator("h1").inner_text()
        screenshot(tab, shots, "structure-periodic")
        tab.goto(server.url + "/structures")
        assert tab.locator("#structures-table tbody tr").count() > 10
        screenshot(tab, shots, "structures")

        tab.goto(server.url + "/models")
        assert tab.locator("#runs-table tbody tr").count() == 2
        screenshot(tab, shots, "models")
        tab.goto(server.url + f"/models/{data.training_run_id}")
        tab.wait_for_selector("[data-chart=chart-energy] .main-svg")  # Plotly drew the charts
        assert tab.locator(".chart .main-svg").count() >= 3
        screenshot(tab, shots, "model")
        with tab.expect_download() as download:
            tab.get_by_text("Download model").click()
        assert download.value.suggested_filename == f"training-run-{data.training_run_id}.pt"

        for path in ("/", "/jobs", f"/jobs/{data.failed_job_ids[0]}"):
            tab.goto(server.url + path)
            assert tab.evaluate("window.__pwned") is None, path  # no stored script ran
    assert problems.errors == []  # no script errors, no Content-Security-Policy violation
    assert len(list(shots.glob("*.png"))) == 10


def test_resubmit_failed_jobs_through_the_page(
    local_env: str, server_env: dict[str, str], tmp_path: Path, page: tuple[Any, PageProblems]
) -> None:
    tab, problems = page
    queue_waters(local_env, 2, seed=21)
    run_pending_jobs(local_env, options=NO_RETRY)
    failed = failed_waters(local_env, 3, seed=22)
    chosen = failed[:2]
    with dashboard_server(server_env) as server:
        tab.goto(server.url + "/jobs")
        tab.evaluate(COUNT_SWAPS)
        for job_id in chosen:
            tab.check(f'#jobs-live input[name=ids][value="{job_id}"]')
        tab.wait_for_function("() => window.__swaps >= 2")  # the table refreshed twice meanwhile
        for job_id in chosen:  # ... and the ticks survived
            assert tab.is_checked(f'#jobs-live input[name=ids][value="{job_id}"]')
        assert tab.locator("#selected-count").inner_text() == "2"
        tab.fill("#write-form textarea[name=set]", "max_iterations=250")
        tab.get_by_role("button", name="Resubmit…").click()
        confirm = tab.locator("#write-result .confirm")
        confirm.wait_for()
        assert "Resubmit 2 jobs?" in confirm.inner_text()
        assert '{"max_iterations": 250}' in confirm.inner_text()
        screenshot(tab, tmp_path, "resubmit-confirm")

        tab.click("#confirm-write")  # no token entered yet: refused, nothing changes
        tab.wait_for_selector("#write-result .message.error")
        assert "dashboard token" in tab.locator("#write-result").inner_text()
        assert {job_and_attempts(local_env, i)[0].state for i in failed} == {JobState.failed}

        tab.fill("#token-input", TOKEN)
        tab.click("#token-save")
        assert tab.locator("#token-unlocked").is_visible()
        tab.get_by_role("button", name="Resubmit…").click()
        tab.locator("#write-result .confirm").wait_for()
        tab.click("#confirm-write")
        done = tab.locator("#write-result .message.ok")
        done.wait_for()
        assert f"Resubmitted 2 jobs: {chosen[0]}, {chosen[1]}" in done.inner_text()
        # The write used up the ticks: none is left, and the count says so (not "2").
        tab.wait_for_function("() => document.getElementById('selected-count').textContent === '0'")
        for job_id in chosen:
            assert not tab.is_checked(f'#jobs-live input[name=ids][value="{job_id}"]')
        screenshot(tab, tmp_path, "resubmit-done")
        for job_id in chosen:
            job, attempts = job_and_attempts(local_env, job_id)
            assert job.state == JobState.pending and job.settings["max_iterations"] == 250
            assert [a.settings["max_iterations"] for a in attempts] == [1]  # history kept
            tab.wait_for_selector(f"tr[data-job='{job_id}'][data-state=pending]")

        assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 2
        for job_id in chosen:  # the page follows without a reload
            tab.wait_for_selector(f"tr[data-job='{job_id}'][data-state=succeeded]")
        assert tab.evaluate("window.__not_reloaded") is True
        _, attempts = job_and_attempts(local_env, chosen[0])
        assert [a.state for a in attempts] == [JobState.failed, JobState.succeeded]

        # Everything matching a filter: the one failed job left.
        tab.goto(server.url + "/jobs?state=failed")
        tab.check("#write-form input[value=matching]")
        tab.get_by_role("button", name="Resubmit…").click()
        tab.locator("#write-result .confirm").wait_for()
        assert "Resubmit 1 job?" in tab.locator("#write-result").inner_text()
        tab.click("#confirm-write")  # the token is still in this tab's sessionStorage
        tab.locator("#write-result .message.ok").wait_for()
        assert job_and_attempts(local_env, failed[2])[0].state == JobState.pending
    assert [e for e in problems.errors if "403" not in e] == []


def test_jobs_page_follows_a_worker(
    local_env: str, server_env: dict[str, str], tmp_path: Path, page: tuple[Any, PageProblems]
) -> None:
    tab, problems = page
    queue_waters(local_env, 30, seed=31)
    with dashboard_server(server_env) as server:
        tab.goto(server.url + "/jobs")
        tab.evaluate(COUNT_SWAPS)
        tab.evaluate(RECORD_SUCCEEDED)
        assert tab.evaluate("window.__succeeded") == [0]
        assert tab.locator(".chip", has_text="pending").locator(".n").inner_text() == "30"
        worker = subprocess.Popen(
            [sys.executable, "-m", "interphase.cli", "jobs", "run", "--no-retry"],
            env={**server_env, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The page polls while the worker runs; it shows every job done, unprompted.
            tab.wait_for_function("() => window.__succeeded.at(-1) === 30")
        finally:
            _, errors = worker.communicate(timeout=300)
        assert worker.returncode == 0, errors
        assert tab.evaluate("window.__not_reloaded") is True
        seen = tab.evaluate("window.__succeeded")
        assert seen == sorted(seen) and seen[0] == 0  # it only moved forward
        assert tab.locator("#jobs-table tr[data-state=succeeded]").count() == 30
        screenshot(tab, tmp_path, "jobs-after-worker")
    assert problems.errors == []


#: After each refresh, note the "succeeded" count the page shows.
RECORD_SUCCEEDED = """
() => {
  const read = () => Number(
    [...document.querySelectorAll(".chip")].find((c) => c.textContent.includes("succeeded"))
      .querySelector(".n").textContent.replace(/,/g, ""));
  window.__succeeded = [read()];
  document.body.addEventListener("htmx:afterSettle", () => {
    if (window.__succeeded.at(-1) !== read()) { window.__succeeded.push(read()); }
  });
}
"""


def test_the_3d_view_draws_li_and_o_in_their_legend_colours(
    local_env: str, server_env: dict[str, str], tmp_path: Path, page: tuple[Any, PageProblems]
) -> None:
    """Li violet and O red on the canvas (3Dmol's own default drew both red)."""
    from PIL import Image

    from tests.dashboard.test_element_colours import store_mixture

    tab, problems = page
    structure_id = store_mixture(local_env, ["Li", "O", "Li", "O", "Li", "O"])
    with dashboard_server(server_env) as server:
        tab.goto(server.url + f"/structures/{structure_id}")
        tab.wait_for_selector("#viewer canvas")
        tab.wait_for_timeout(500)  # one frame after the canvas appears
        shot = tmp_path / "viewer.png"
        tab.locator("#viewer").screenshot(path=str(shot))
        legend = [" ".join(t.split()) for t in tab.locator("#element-legend li").all_inner_texts()]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    red, green, blue = pixels.T
    violet = (blue > 150) & (red > 100) & (green < red - 30) & (green < blue - 30)
    pure_red = (red > 150) & (green < 60) & (blue < 60)
    assert violet.sum() > 200, "no violet Li on the canvas"
    assert pure_red.sum() > 200, "no red O on the canvas"
    assert legend == ["Li 3", "O 3"]
    assert problems.errors == []
