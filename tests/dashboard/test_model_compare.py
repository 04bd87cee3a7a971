"""Training runs compared side by side, over a real campaign run, checked against the database.

The campaign is ``tests/campaign/tiny.yaml`` run to its end (two iterations, so
two training runs, each evaluated on the campaign's test split), under a name
made of markup; a third run is trained outside the campaign (validation errors
only). Every number on the page is the database's, and the best of each row is
the lowest.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from interphase.dashboard.app import create_app
from interphase.db.models import CampaignStep, TrainingRun
from interphase.db.session import transaction
from interphase.training.from_db import train_from_database
from interphase.training.settings import TrainingSettings
from tests.conftest import BACKENDS
from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    PageProblems,
    chromium_or_skip,
    dashboard_server,
    screenshot,
)
from tests.dashboard.campaign_data import TINY_TRAINING
from tests.dashboard.conftest import TOKEN
from tests.dashboard.real_campaign import HOSTILE, RealCampaign, module_database, run_tiny
from tests.dashboard.test_hostile_input import NOT_IDS

pytestmark = pytest.mark.slow

QUANTITIES = ("energy_mae_mev_per_atom", "force_mae_mev_per_angstrom", "n_structures")


@pytest.fixture(scope="module", params=BACKENDS)
def real(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealCampaign]:
    directory = tmp_path_factory.mktemp("compare-campaign")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        module_database(request.param, directory, request) as url,
    ):
        yield run_tiny(url, monkeypatch, directory / "data", name=HOSTILE)


@pytest.fixture(scope="module")
def standalone(real: RealCampaign) -> int:
    """A run of ``interphase train`` on the same labels: no campaign, so no test split."""
    settings = TrainingSettings.model_validate(TINY_TRAINING)
    run_id, _ = train_from_database(real.url, settings, real.data_dir / "standalone")
    return run_id


@pytest.fixture(scope="module")
def client(real: RealCampaign) -> Iterator[TestClient]:
    with TestClient(create_app(real.url, token=TOKEN)) as test_client:
        yield test_client


def campaign_runs(real: RealCampaign) -> dict[int, dict[str, Any]]:
    """Each evaluated run of the campaign: its evaluate step's test errors, by run id."""
    with transaction(real.url, read_only=True) as session:
        steps = session.execute(
            select(CampaignStep.iteration_index, CampaignStep.name, CampaignStep.outputs).where(
                CampaignStep.campaign_id == real.campaign_id,
                CampaignStep.name.in_(["train", "evaluate"]),
            )
        ).all()
    outputs = {(index, name): values for index, name, values in steps}
    return {
        outputs[(index, "train")]["training_run_id"]: outputs[(index, "evaluate")]["test_errors"]
        for index, name in outputs
        if name == "train"
    }


def validation_errors(url: str, run_id: int) -> dict[str, dict[str, Any]]:
    with transaction(url, read_only=True) as session:
        metrics = session.get_one(TrainingRun, run_id).metrics
    return {head: splits["validation"] for head, splits in metrics["heads"].items()}


def table(page: str) -> dict[tuple[str, str, str], dict[int, tuple[str, bool]]]:
    """(head, split, quantity) -> run id -> (the cell's text, marked best)."""
    row = r'<tr class="[^"]*" data-head="([^"]*)" data-split="(\w+)" data-quantity="(\w+)">'
    rows = re.findall(row + "(.*?)</tr>", page, re.S)
    found = {}
    for head, split, quantity, body in rows:
        cells = re.findall(r'<td class="num( best)?" data-run="(\d+)"[^>]*>(.*?)</td>', body, re.S)
        found[(html.unescape(head), split, quantity)] = {
            int(run): (" ".join(re.sub(r"<[^>]+>", " ", text).split()), bool(best))
            for best, run, text in cells
        }
    return found


def shown(value: float | int | None, quantity: str) -> str:
    """How the page writes a value (★ aside)."""
    if value is None:
        return "–"
    return f"{value:,}" if quantity == "n_structures" else f"{value:.2f}"


def test_each_heads_errors_side_by_side_with_the_best_marked(
    client: TestClient, real: RealCampaign, standalone: int
) -> None:
    evaluated = campaign_runs(real)
    assert len(evaluated) == 2  # one per iteration
    order = [*sorted(evaluated, reverse=True), standalone]
    page = client.get("/models/compare?" + "&".join(f"run={run}" for run in order)).text
    cells = table(page)
    assert re.findall(r'<th class="num" data-run="(\d+)">', page) == [str(r) for r in order]

    expected: dict[tuple[str, str, str], dict[int, float | int | None]] = {}
    for run_id in order:
        for head, errors in evaluated.get(run_id, {}).items():
            for quantity in QUANTITIES:
                expected.setdefault((head, "test", quantity), {})[run_id] = errors[quantity]
        for head, errors in validation_errors(real.url, run_id).items():
            values = {**errors, "n_structures": errors["n_energies"]}
            for quantity in QUANTITIES:
                expected.setdefault((head, "validation", quantity), {})[run_id] = values[quantity]
    expected = {
        key: row for key, row in expected.items() if any(v is not None for v in row.values())
    }
    assert set(cells) == set(expected)
    assert {head for head, split, _ in cells if split == "test"}  # the evaluate step's heads

    for key, row in expected.items():
        quantity = key[2]
        present = [v for v in row.values() if v is not None]
        lowest = min(present) if quantity != "n_structures" and len(present) > 1 else None
        for run_id in order:
            value = row.get(run_id)
            text, best = cells[key][run_id]
            assert text.removeprefix("★ ") == shown(value, quantity), (key, run_id)
            assert best == (value is not None and value == lowest), (key, run_id)
            assert text.startswith("★") == best
    assert any(best for row in cells.values() for _, best in row.values())

    untested = re.search(r'<ul class="small" id="untested">(.*?)</ul>', page, re.S)
    assert untested is not None
    assert f"run {standalone}: not a campaign run: no test split" in untested[1]
    assert str(escape(HOSTILE)) in page and "<script>window" not in page and "<img" not in page


def test_the_list_ticks_runs_into_the_comparison(client: TestClient, real: RealCampaign) -> None:
    page = client.get("/models").text
    assert '<form id="compare-form" action="/models/compare" method="get"' in page
    for run_id in campaign_runs(real):
        assert (
            f'<input type="checkbox" name="run" value="{run_id}" form="compare-form" '
            f'id="compare-run-{run_id}" hx-preserve' in page
        )


def test_unknown_and_invalid_runs_are_refused(client: TestClient, real: RealCampaign) -> None:
    first = min(campaign_runs(real))
    refusals = {
        "": (400, "no run to compare"),
        "?run=": (400, "run must be a whole number"),
        "?run=abc": (400, "run must be a whole number"),
        "?other=1": (400, "no run to compare"),
        "?run=999999": (404, "no training run 999999"),
        f"?run={first}&run=999998&run=999999": (404, "no training run 999998, 999999"),
        "?" + "&".join(f"run={k}" for k in range(1, 14)): (400, "at most 12 runs"),
        **{f"?run={value}": (400, "run must be") for value in NOT_IDS},
    }
    for query, (status, message) in refusals.items():
        response = client.get("/models/compare" + query)
        assert response.status_code == status, query
        assert message in html.unescape(response.text), query
        assert "Traceback" not in response.text
    twice = client.get(f"/models/compare?run={first}&run={first}")
    assert twice.status_code == 200
    assert re.findall(r'<th class="num" data-run="(\d+)">', twice.text) == [str(first)]
    repeated = "&".join(f"run={first}" for _ in range(20))  # repeats count once
    assert client.get(f"/models/compare?{repeated}").status_code == 200


def test_comparing_in_a_browser(real: RealCampaign, standalone: int, tmp_path: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    runs = sorted([*campaign_runs(real), standalone])
    env = {
        "INTERPHASE_DATABASE_URL": real.url,
        "INTERPHASE_DATA_DIR": str(real.data_dir),
        "INTERPHASE_DASHBOARD_TOKEN": TOKEN,
    }
    with dashboard_server(env) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        problems = PageProblems()
        problems.watch(tab)
        tab.goto(server.url + "/models")
        for run_id in runs:
            tab.check(f"#compare-run-{run_id}")
        tab.click("#compare-form button[type=submit]")
        tab.wait_for_url("**/models/compare?*")
        assert tab.url.endswith("?" + "&".join(f"run={run}" for run in sorted(runs, reverse=True)))
        assert tab.locator("#compare-table td.best").count() >= 1
        assert HOSTILE in tab.locator("#compare-table thead").inner_text()  # text, never run
        assert tab.evaluate("window.__pwned") is None
        screenshot(tab, tmp_path, "model-compare")
        browser.close()
    assert problems.errors == []
