"""Campaign pages in a real browser (Debian's Chromium through Playwright).

One test opens a finished real campaign (``tiny.yaml``) and checks that the
charts render and the step table is there; one follows a running campaign
(held mid-fit in its own process), stops it through the page and sees it
advance to ``stopped`` without a reload.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interphase.db.models import Campaign
from interphase.db.session import transaction
from tests.campaign.conftest import CampaignEnv, no_leftovers, prefect_url
from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    COUNT_SWAPS,
    PageProblems,
    chromium_or_skip,
    dashboard_server,
    screenshot,
)
from tests.dashboard.conftest import TOKEN
from tests.dashboard.real_campaign import run_tiny
from tests.dashboard.test_campaign_live import campaign_row, start_held

__all__ = ["prefect_url"]

pytestmark = pytest.mark.slow
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
def page(browser: Any) -> Iterator[tuple[Any, PageProblems]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    problems = PageProblems()
    problems.watch(opened)
    yield opened, problems
    context.close()


def server_env(url: str, data_dir: Path) -> dict[str, str]:
    return {
        "INTERPHASE_DATABASE_URL": url,
        "INTERPHASE_DATA_DIR": str(data_dir),
        "INTERPHASE_DASHBOARD_TOKEN": TOKEN,
        "OMP_NUM_THREADS": "1",
    }


def test_campaign_pages_draw_their_charts(
    local_env: str,
    tmp_path: Path,
    page: tuple[Any, PageProblems],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tab, problems = page
    real = run_tiny(local_env, monkeypatch, tmp_path / "data")
    with dashboard_server(server_env(local_env, tmp_path / "data")) as server:
        tab.goto(server.url + "/campaigns")
        row = tab.locator(f"#campaigns-table tr[data-campaign='{real.campaign_id}']")
        assert "finished" in row.inner_text() and "max_iterations" in row.inner_text()
        screenshot(tab, tmp_path, "campaigns")
        row.get_by_role("link", name="tiny").click()
        tab.wait_for_selector("[data-chart=chart-uncertainty-1] .main-svg")
        for name in ("fraction", "labels", "energy", "force", "jobs"):
            tab.wait_for_selector(f"[data-chart=chart-{name}] .main-svg")
        # the threshold is drawn: a dashed shape line in the histogram
        assert tab.locator("[data-chart=chart-uncertainty-1] .shapelayer path").count() >= 1
        assert tab.locator("#iterations-table tbody tr").count() == 2
        screenshot(tab, tmp_path, "campaign")

        tab.locator("#iterations-table").get_by_role("link", name="iteration 0").click()
        tab.wait_for_selector("#steps-table")
        states = tab.locator("#steps-table tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.step, r.dataset.state])"
        )
        assert [s for _, s in states] == ["succeeded"] * 10 and states[0][0] == "generate"
        tab.wait_for_selector("[data-chart=chart-select-1] .main-svg")
        tab.wait_for_selector("[data-chart^=chart-parity-energy] .main-svg")
        tab.wait_for_selector("[data-chart^=chart-loss] .main-svg")
        assert tab.locator("#gps-table tbody tr").count() >= 2
        assert tab.locator("#picks-table tbody tr").count() >= 1
        screenshot(tab, tmp_path, "iteration")
    assert problems.errors == []  # no script error, no Content-Security-Policy violation


def test_following_and_stopping_a_running_campaign(
    local_env: str, tmp_path: Path, page: tuple[Any, PageProblems], prefect_url: str
) -> None:
    tab, problems = page
    env = CampaignEnv(local_env, tmp_path / "data", prefect_url)
    marker = tmp_path / "holding"
    process = start_held(env, marker)
    try:
        campaign_id = campaign_row(local_env).id
        with dashboard_server(server_env(local_env, tmp_path / "data")) as server:
            tab.goto(server.url + f"/campaigns/{campaign_id}/iterations/0")
            tab.evaluate(COUNT_SWAPS)
            tab.wait_for_selector("#steps-table tr[data-step=fit][data-state=running]")
            assert "running" in tab.locator("#campaign-state").inner_text()

            tab.get_by_role("button", name="Stop campaign…").click()
            tab.locator("#stop-result .confirm").wait_for()
            tab.click("#confirm-stop")  # no token entered: refused, nothing changes
            tab.wait_for_selector("#stop-result .message.error")
            assert "dashboard token" in tab.locator("#stop-result").inner_text()
            assert campaign_row(local_env).stop_requested is False

            tab.fill("#token-input", TOKEN)
            tab.click("#token-save")
            tab.get_by_role("button", name="Stop campaign…").click()
            tab.locator("#stop-result .confirm").wait_for()
            screenshot(tab, tmp_path, "stop-confirm")
            tab.click("#confirm-stop")
            tab.wait_for_selector("#stop-result .message.ok")
            assert campaign_row(local_env).stop_requested is True
            tab.wait_for_selector("#stop-requested")  # the polled part shows it
            screenshot(tab, tmp_path, "iteration-running")

            marker.unlink()  # the fit goes on; the runner stops after it
            tab.wait_for_selector("#steps-table tr[data-step=fit][data-state=succeeded]")
            tab.wait_for_selector("#campaign-state[data-state=stopped]")
            assert "stop_requested" in tab.locator("#campaign-state").inner_text()
            assert tab.evaluate("window.__not_reloaded") is True
            screenshot(tab, tmp_path, "iteration-stopped")
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, output
    no_leftovers(str(marker))
    with transaction(local_env, read_only=True) as session:
        assert session.get_one(Campaign, campaign_id).state == "stopped"
    assert [e for e in problems.errors if "403" not in e] == []
