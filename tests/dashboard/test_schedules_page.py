"""The schedules page: stored schedules, their ticks on a real Prefect server, links to flow runs.

Schedules are stored as ``interphase campaign schedule`` stores them
(:func:`~interphase.campaign.schedules.set_schedule`). Ticks are flow runs on
a real local Prefect server: the campaign's deployment as ``schedule`` applies
it, a run cancelled by Prefect itself for the deployment's concurrency limit,
and real runs of the scheduled flow (a held campaign: skipped; a finished one:
nothing to do). Without a reachable server the page still answers, saying the
ticks are unknown. Campaign names hold markup; the page must show it as text.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from interphase.campaign.config import load_campaign_config
from interphase.campaign.lock import CampaignLock
from interphase.campaign.run import register_campaign
from interphase.campaign.schedules import ScheduleSpec, remove_schedule, set_schedule
from interphase.campaign.ticks import CONCURRENCY_MESSAGE, serve_info_path
from interphase.db.models import Campaign, CampaignState
from interphase.db.session import transaction
from interphase.settings import get_settings
from tests.campaign.conftest import TINY, prefect_url
from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    PageProblems,
    chromium_or_skip,
    dashboard_server,
    screenshot,
)
from tests.dashboard.conftest import TOKEN
from tests.dashboard.real_campaign import HOSTILE

__all__ = ["prefect_url"]


def scheduled(url: str, name: str, **schedule: Any) -> int:
    """Register ``tiny.yaml`` as ``name`` and schedule it as the CLI does; its campaign id."""
    campaign_id = register_campaign(url, load_campaign_config(TINY, name=name))
    with transaction(url) as session:
        set_schedule(session, ScheduleSpec(campaign=name, **schedule))
    return campaign_id


def text_of(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities read, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def schedule_row(page: str, campaign_id: int) -> str:
    """The text of the campaign's row in the schedules table."""
    match = re.search(rf'<tr data-campaign="{campaign_id}">(.*?)</tr>', page, re.S)
    assert match is not None, f"no schedule row of campaign {campaign_id}"
    return text_of(match.group(1))


def tick_rows(page: str, campaign_id: int) -> dict[str, str]:
    """Tick id -> the HTML of its row, in the campaign's ticks section."""
    opening = f'<section class="card ticks" id="ticks-{campaign_id}">'
    section = re.search(re.escape(opening) + "(.*?)</section>", page, re.S)
    if section is None:
        return {}
    return dict(re.findall(r'<tr data-tick="([0-9a-f-]+)">(.*?)</tr>', section.group(1), re.S))


def test_no_schedule_no_server_and_an_unreachable_server(
    client: TestClient, local_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    empty = client.get("/schedules")
    assert empty.status_code == 200 and "nothing is scheduled" in empty.text
    assert 'href="/schedules"' in client.get("/models").text  # in the navigation

    nightly = scheduled(local_env, "nightly", interval_seconds=3600, iterations_per_run=1)
    rare = scheduled(local_env, HOSTILE, cron="0 2 * * *", timezone="Europe/Berlin")
    page = client.get("/schedules").text
    assert "No Prefect server is up" in page
    assert schedule_row(page, nightly).startswith("nightly created every 1h 1 active unknown (no")
    assert "cron 0 2 * * * (Europe/Berlin) until done" in schedule_row(page, rare)
    assert str(escape(HOSTILE)) in page and "<script>window" not in page and "<img" not in page

    # Nothing listens on port 9; the password in the address is never shown.
    monkeypatch.setenv("PREFECT_API_URL", "http://user:secret@127.0.0.1:9/api")
    started = time.monotonic()
    down = client.get("/schedules")
    assert down.status_code == 200 and time.monotonic() - started < 10
    assert "secret" not in down.text
    assert "the Prefect server at http://127.0.0.1:9/api is not reachable" in text_of(down.text)
    assert "unknown (Prefect server not reachable)" in schedule_row(down.text, nightly)

    with transaction(local_env) as session:
        remove_schedule(session, "nightly")
    row = schedule_row(client.get("/schedules").text, nightly)
    assert "unscheduled" in row and "none (unscheduled)" in row


@dataclass(frozen=True)
class Ticks:
    """The ticks recorded for one test, by what they should show as."""

    plain: int  # campaign with a deployment
    hostile: int  # campaign whose name Prefect refuses as a deployment name (no deployment)
    ran: UUID
    skipped: UUID  # cancelled by Prefect: the deployment's one run was going
    failed: UUID
    held: UUID  # the scheduled flow on a held campaign
    nothing_to_do: UUID  # the scheduled flow on a finished campaign
    next_run: datetime
    deployment: UUID


def start(client: Any, run_id: UUID) -> None:
    """Pending, then Running, as a worker starts a flow run: it takes the deployment's one slot."""
    from prefect.states import Pending, Running

    client.set_flow_run_state(run_id, Pending())
    client.set_flow_run_state(run_id, Running())


def record_ticks(url: str, api: str) -> Ticks:
    """Schedule two campaigns and give them ticks on the Prefect server at ``api``."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Completed, Failed, Pending, Scheduled

    from interphase_flows.schedule import apply_to_work_pool, scheduled_campaign_flow

    suffix = uuid.uuid4().hex[:6]  # the server outlives the test: names of its own
    plain_name, hostile_name = f"nightly-{suffix}", f"{HOSTILE} {suffix}"
    plain = scheduled(url, plain_name, interval_seconds=30 * 86400, iterations_per_run=1)
    hostile = scheduled(url, hostile_name, interval_seconds=600)
    next_run = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    with temporary_settings({PREFECT_API_URL: api}):
        pool = f"pool-{suffix}"
        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        spec = ScheduleSpec(campaign=plain_name, interval_seconds=30 * 86400, iterations_per_run=1)
        deployment = apply_to_work_pool(spec, pool)
        with get_client(sync_client=True) as client:
            ran = client.create_flow_run_from_deployment(deployment)
            start(client, ran.id)
            skipped = client.create_flow_run_from_deployment(deployment)
            refused: Any = client.set_flow_run_state(skipped.id, Pending())
            assert refused.state is not None and refused.state.message == CONCURRENCY_MESSAGE
            client.set_flow_run_state(
                ran.id, Completed(message="stopped (run_limit): 1 iteration(s) done")
            )
            failed = client.create_flow_run_from_deployment(deployment)
            start(client, failed.id)
            because = f"step fit failed; fix the cause, then `campaign resume {plain_name}`"
            client.set_flow_run_state(failed.id, Failed(message=because))
            client.create_flow_run_from_deployment(
                deployment, state=Scheduled(scheduled_time=next_run)
            )
        with CampaignLock(url, hostile):
            held = scheduled_campaign_flow(hostile_name, iterations=1, url=url, return_state=True)
        with transaction(url) as session:
            session.get_one(Campaign, hostile).state = CampaignState.finished.value
        idle = scheduled_campaign_flow(hostile_name, iterations=1, url=url, return_state=True)
    assert held.is_cancelled() and idle.is_completed()
    return Ticks(
        plain, hostile, ran.id, skipped.id, failed.id,
        held.state_details.flow_run_id, idle.state_details.flow_run_id, next_run, deployment,
    )  # fmt: skip


@pytest.fixture
def ticks(local_env: str, prefect_url: str, monkeypatch: pytest.MonkeyPatch) -> Ticks:
    monkeypatch.setenv("PREFECT_API_URL", prefect_url)
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    return record_ticks(local_env, prefect_url)


@pytest.mark.slow
def test_ticks_their_outcomes_and_links_to_the_flow_runs(
    client: TestClient, ticks: Ticks, prefect_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = client.get("/schedules").text
    ui = prefect_url.removesuffix("/api")
    assert f"from the Prefect server at {prefect_url} (PREFECT_API_URL)." in text_of(page)
    assert "<script>window" not in page and "<img" not in page

    plain = schedule_row(page, ticks.plain)
    shown_next = f"{ticks.next_run:%Y-%m-%d %H:%M:%S}"
    assert f"every 30d 1 active {shown_next} (in " in plain
    assert re.search(r"\) 1 1 1 failed \d", plain), plain  # ran, skipped, failed; the last
    rows = tick_rows(page, ticks.plain)
    assert set(rows) == {str(ticks.ran), str(ticks.skipped), str(ticks.failed)}
    assert "tick-skipped" in rows[str(ticks.skipped)]
    assert CONCURRENCY_MESSAGE in rows[str(ticks.skipped)]
    assert "tick-ran" in rows[str(ticks.ran)] and "tick-failed" in rows[str(ticks.failed)]
    for tick_id, row in rows.items():
        assert f'href="{ui}/runs/flow-run/{tick_id}"' in row

    hostile = schedule_row(page, ticks.hostile)
    assert "none: no deployment on Prefect" in hostile  # Prefect refuses markup in names
    assert re.search(r"\) 1 1 0 ran \d", hostile), hostile  # nothing to do, held, none failed
    rows = tick_rows(page, ticks.hostile)
    assert set(rows) == {str(ticks.held), str(ticks.nothing_to_do)}
    held = html.unescape(rows[str(ticks.held)])
    assert "tick-skipped" in held and f"skipped: campaign {HOSTILE!r}"[:40] in held
    assert "nothing to do" in rows[str(ticks.nothing_to_do)]
    assert str(escape(HOSTILE)) in page

    # The CLI's own reader of ticks (Prefect's client) sees the same ticks and skips.
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from interphase_flows.schedule import recent_runs

    shown = {UUID(tick_id) for tick_id in [*rows, *tick_rows(page, ticks.plain)]}
    with temporary_settings({PREFECT_API_URL: prefect_url}):
        cli_ticks = [tick for tick in recent_runs(limit=200) if tick.id in shown]
    assert len(cli_ticks) == 5
    assert {tick.id for tick in cli_ticks if tick.skipped} == {ticks.skipped, ticks.held}

    monkeypatch.setenv("PREFECT_UI_URL", "https://prefect.example.org")
    linked = client.get("/schedules").text
    assert f'href="https://prefect.example.org/runs/flow-run/{ticks.failed}"' in linked

    monkeypatch.setenv("PREFECT_API_URL", prefect_url + "/nope")  # a server, not that API
    wrong = client.get("/schedules").text
    source = re.search(r'<p class="small" id="prefect-source">(.*?)</p>', wrong, re.S)
    assert source is not None
    assert f"the Prefect server at {prefect_url}/nope answered HTTP 404" in text_of(source[1])


@pytest.mark.slow
def test_serves_api_without_ui_and_a_paused_deployment(
    client: TestClient, ticks: Ticks, prefect_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL")
    info = serve_info_path(get_settings().data_dir)
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(json.dumps({"api_url": prefect_url, "pid": os.getpid()}))  # a live serve
    page = client.get("/schedules").text
    assert "(interphase serve); it has no UI, so flow runs are not linked" in text_of(page)
    rows = tick_rows(page, ticks.plain)
    assert len(rows) == 3 and not any("href=" in row for row in rows.values())
    assert str(ticks.failed) in rows[str(ticks.failed)]  # the id, as text

    with temporary_settings({PREFECT_API_URL: prefect_url}), get_client(sync_client=True) as c:
        c.pause_deployment(ticks.deployment)
    row = schedule_row(client.get("/schedules").text, ticks.plain)
    assert "paused on Prefect" in row and "none (paused on Prefect)" in row


@pytest.mark.slow
def test_schedules_page_in_a_browser(
    local_env: str, ticks: Ticks, prefect_url: str, tmp_path: Path
) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    env = {
        "INTERPHASE_DATABASE_URL": local_env,
        "INTERPHASE_DATA_DIR": str(tmp_path / "data"),
        "INTERPHASE_DASHBOARD_TOKEN": TOKEN,
        "PREFECT_API_URL": prefect_url,
    }
    with (
        dashboard_server(env, unset=("PREFECT_UI_URL",)) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        problems = PageProblems()
        problems.watch(tab)
        tab.goto(server.url + "/models")
        tab.click("nav a[href='/schedules']")
        tab.wait_for_url("**/schedules")
        row = tab.locator(f"#schedules-table tr[data-campaign='{ticks.hostile}']")
        assert HOSTILE in row.inner_text()  # shown as text, never run
        assert tab.evaluate("window.__pwned") is None
        link = tab.locator(f"#ticks-{ticks.plain} tr[data-tick='{ticks.skipped}'] a")
        assert link.get_attribute("href") == f"{prefect_url[:-4]}/runs/flow-run/{ticks.skipped}"
        assert link.get_attribute("rel") == "noopener noreferrer"
        screenshot(tab, tmp_path, "schedules")
        browser.close()
    assert problems.errors == []
