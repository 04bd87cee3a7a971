"""Parity plots of a larger run in a real browser: drawn as SVG under the page's CSP.

Plotly's WebGL scatter needs ``eval``, which the dashboard's Content-Security-Policy
forbids: Chromium then shows "WebGL is not supported by your browser" instead
of the plot. The run here has over 5,000 force components (more than the old
WebGL switch-over), on the run's page and its iteration's page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    PageProblems,
    chromium_or_skip,
    dashboard_server,
    screenshot,
)
from tests.dashboard.conftest import TOKEN
from tests.dashboard.test_parity_pages import parity_run

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


def test_force_parity_of_a_larger_run_draws_svg_points(
    local_env: str, tmp_path: Path, page: tuple[Any, PageProblems]
) -> None:
    tab, problems = page
    run = parity_run(local_env, tmp_path / "artifacts")
    assert run.n_force_components["train"] > 2000
    env = {
        "INTERPHASE_DATABASE_URL": local_env,
        "INTERPHASE_DATA_DIR": str(tmp_path / "data"),
        "INTERPHASE_DASHBOARD_TOKEN": TOKEN,
        "OMP_NUM_THREADS": "1",
    }
    pages = {
        "model-parity": (f"/models/{run.run_id}", "chart-parity-force-0"),
        "iteration-parity": (
            f"/campaigns/{run.campaign_id}/iterations/{run.iteration_index}",
            f"chart-parity-force-{run.run_id}-0",
        ),
    }
    with dashboard_server(env) as server:
        for name, (path, chart) in pages.items():
            tab.goto(server.url + path)
            tab.wait_for_selector(f"[data-chart={chart}] .main-svg")
            points = tab.locator(f"[data-chart={chart}] .scatterlayer .point")
            assert points.count() > 2000, name  # train, validation and test, thinned
            energy = chart.replace("force", "energy")
            assert tab.locator(f"[data-chart={energy}] .scatterlayer .point").count() > 0
            assert "WebGL" not in tab.locator("body").inner_text()
            screenshot(tab, tmp_path, name)
    assert problems.errors == []  # no script error, no Content-Security-Policy violation
