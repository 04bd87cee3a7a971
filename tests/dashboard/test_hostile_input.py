"""Hostile ids and text in addresses and forms: 400 or 404, never 500 (SQLite, PostgreSQL).

Every answer, the 500 page included, carries the same Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import text

from interphase.dashboard.app import create_app
from interphase.db.session import make_engine
from tests.dashboard.campaign_data import create_campaign, failed_waters, start_iteration
from tests.dashboard.conftest import TOKEN, WRITE_HEADERS
from tests.dashboard.test_resubmit import snapshot

HUGE = "99999999999999999999999"  # over 2**63 - 1: no database integer holds it
JUST_OVER = str(2**63)
#: Values that are not a row id although int() or str.isdigit() may say so.
NOT_IDS = [HUGE, JUST_OVER, "%C2%B2", "%EF%BC%91", "-1", "%2B1", "1_0", "1" * 5000]


@dataclass(frozen=True)
class Hostile:
    """The dashboard (server errors answered as pages, not raised), a campaign and a job."""

    client: TestClient
    campaign: int
    job_id: int
    policy: str  # the Content-Security-Policy of a normal page

    def refused(self, response: Response, *allowed: int) -> str:
        """Why ``response`` is not a refusal in ``allowed`` with the pages' CSP ('' if it is)."""
        if response.status_code not in allowed:
            return f"status {response.status_code}"
        if response.headers.get("Content-Security-Policy") != self.policy:
            return "not the pages' Content-Security-Policy"
        return ""


@pytest.fixture
def hostile(local_env: str) -> Iterator[Hostile]:
    campaign = create_campaign(local_env, "hostile", {}, ["GFN2-xTB"])
    start_iteration(local_env, campaign)
    (job_id, _) = failed_waters(local_env, 2, seed=1)
    app = create_app(local_env, token=TOKEN)
    with TestClient(app, raise_server_exceptions=False) as client:
        policy = client.get("/jobs").headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        yield Hostile(client, campaign, job_id, policy)


def test_ids_in_the_address_that_no_row_can_have_are_404(
    hostile: Hostile,
) -> None:
    client, campaign, job_id = hostile.client, hostile.campaign, hostile.job_id
    templates = [
        "/jobs/{}",
        "/jobs/{}/live",
        "/structures/{}",
        "/structures/{}/extxyz",
        "/models/{}",
        "/models/{}/live",
        "/models/1/artifacts/{}",
        "/campaigns/{}",
        "/campaigns/{}/live",
        "/campaigns/{}/stop",
        f"/campaigns/{campaign}/iterations/{{}}",
        f"/campaigns/{campaign}/iterations/{{}}/live",
    ]
    problems = {
        (path, value): problem
        for path in templates
        for value in [*NOT_IDS, "%201", "1.0"]
        if (problem := hostile.refused(client.get(path.format(value)), 404))
    }
    assert problems == {}
    stop = client.post(f"/campaigns/{HUGE}/stop", headers=WRITE_HEADERS)
    assert hostile.refused(stop, 404) == ""
    assert client.get(f"/jobs/{job_id}").status_code == 200  # a real id still works


def test_ids_cursors_and_nul_in_filters_are_400(hostile: Hostile) -> None:
    client = hostile.client
    queries = [
        *(f"{name}={value}" for name in ("before", "after") for value in NOT_IDS),
        *(f"{name}={value}" for name in ("campaign", "iteration") for value in NOT_IDS),
        *(f"{name}=%00" for name in ("message", "level", "engine", "error_class", "state")),
        "message=x%00y",
    ]
    problems = {
        (page, query): problem
        for page in ("/jobs", "/jobs/live")
        for query in queries
        if (problem := hostile.refused(client.get(f"{page}?{query}"), 400))
    }
    structures = [
        *(f"{name}={value}" for name in ("before", "after", "campaign") for value in NOT_IDS),
        "generator=%00",
        "formula=%00",
    ]
    problems |= {
        ("/structures", query): problem
        for query in structures
        if (problem := hostile.refused(client.get(f"/structures?{query}"), 400))
    }
    compared = [*(f"run={value}" for value in [*NOT_IDS, "%00", ""]), "run=1&run=x", "other=1"]
    problems |= {
        ("/models/compare", query): problem
        for query in compared
        if (problem := hostile.refused(client.get(f"/models/compare?{query}"), 400))
    }
    assert problems == {}
    page = client.get("/jobs?before=%C2%B2").text
    assert "whole number (digits 0-9)" in page and "Traceback" not in page


def test_ids_and_nul_in_forms_are_400_and_change_nothing(hostile: Hostile, local_env: str) -> None:
    client, job_id = hostile.client, hostile.job_id
    before = snapshot(local_env)
    forms: list[dict[str, str]] = [
        *({"scope": "selected", "ids": value} for value in (HUGE, JUST_OVER, "²", "-1")),
        {"scope": "selected", "ids": str(job_id), "expected_count": HUGE},
        *({"scope": "matching", name: HUGE} for name in ("campaign", "iteration")),
        *({"scope": "matching", name: "\x00"} for name in ("message", "level", "engine")),
    ]
    settings = [  # only resubmit reads settings
        {"scope": "selected", "ids": str(job_id), "set": 'charge="\x00"'},
        {"scope": "selected", "ids": str(job_id), "set": "x=" + "[" * 5000 + "]" * 5000},
    ]
    problems = {}
    for form, actions in [
        *((f, ("resubmit", "cancel")) for f in forms),
        *((f, ("resubmit",)) for f in settings),
    ]:
        confirmed = {**form, "expected_count": form.get("expected_count", "1")}
        for action in actions:
            for path, data in ((f"/jobs/{action}/preview", form), (f"/jobs/{action}", confirmed)):
                answer = client.post(path, data=data, headers=WRITE_HEADERS)
                if problem := hostile.refused(answer, 400):
                    problems[(path, str(form)[:80])] = problem
    assert problems == {}
    assert snapshot(local_env) == before


def test_a_server_error_page_carries_the_security_headers(hostile: Hostile, local_env: str) -> None:
    client = hostile.client
    engine = make_engine(local_env)
    with engine.begin() as connection:  # a real failure: the jobs table is gone
        connection.execute(text("ALTER TABLE labeling_job RENAME TO labeling_job_gone"))
    engine.dispose()
    response = client.get("/jobs")
    assert response.status_code == 500
    assert response.headers["Content-Security-Policy"] == hostile.policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "internal error" in response.text and "Traceback" not in response.text
    assert "labeling_job" not in response.text  # no SQL or schema detail on the page
