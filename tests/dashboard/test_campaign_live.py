"""A running campaign on the dashboard: its running step, and the token-protected stop.

The campaign is ``interphase campaign run tests/campaign/tiny.yaml`` in its own
process, held in the middle of iteration 0's fit (the fault hooks of
``interphase.campaign.faults``); the test lets it go on and checks it stops
after that step, and that nothing of it is left running.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from interphase.db.models import Campaign, CampaignStep
from interphase.db.session import transaction
from tests.campaign.conftest import TINY, CampaignEnv, no_leftovers, prefect_url, wait_for
from tests.dashboard.conftest import WRITE_HEADERS

__all__ = ["prefect_url"]  # the session's Prefect server, for the campaign process

pytestmark = pytest.mark.slow

HOLD_AT = "0:fit"


def start_held(env: CampaignEnv, marker: Path) -> subprocess.Popen[str]:
    """``campaign run tiny.yaml``, waiting mid-fit while ``marker`` exists."""
    process = env.start(
        "campaign", "run", str(TINY),
        INTERPHASE_TEST_HOLD_AT=HOLD_AT, INTERPHASE_TEST_HOLD_FILE=str(marker),
    )  # fmt: skip
    wait_for(marker.exists, 300, f"the campaign to reach {HOLD_AT}")
    return process


def campaign_row(url: str) -> Campaign:
    with transaction(url, read_only=True) as session:
        campaign = session.scalars(select(Campaign)).one()
        session.expunge(campaign)
        return campaign


def test_running_step_is_shown_and_stop_needs_the_token(
    client: TestClient, local_env: str, tmp_path: Path, prefect_url: str
) -> None:
    env = CampaignEnv(local_env, tmp_path / "data", prefect_url)
    marker = tmp_path / "holding"
    process = start_held(env, marker)
    try:
        campaign_id = campaign_row(local_env).id
        listing = client.get("/campaigns").text
        assert f'data-campaign="{campaign_id}" data-state="running"' in listing
        assert re.search(r"iteration 0 · fit", listing)
        page = client.get(f"/campaigns/{campaign_id}/iterations/0").text
        assert '<tr data-step="fit" data-state="running">' in page
        assert '<tr data-step="label" data-state="succeeded">' in page
        assert '<tr data-step="select" data-state="waiting">' in page
        assert 'hx-trigger="every 2s' in page  # it polls while the campaign runs
        assert "Stop campaign" in client.get(f"/campaigns/{campaign_id}").text
        confirm = client.get(f"/campaigns/{campaign_id}/stop").text
        assert "It stops after iteration 0's step fit" in confirm

        refused = client.post(f"/campaigns/{campaign_id}/stop")
        assert refused.status_code == 403 and "needs the dashboard token" in refused.text
        wrong = client.post(
            f"/campaigns/{campaign_id}/stop", headers={"X-Interphase-Token": "no" * 10}
        )
        assert wrong.status_code == 403
        assert campaign_row(local_env).stop_requested is False  # unchanged

        done = client.post(f"/campaigns/{campaign_id}/stop", headers=WRITE_HEADERS)
        assert done.status_code == 200 and "Stop requested" in done.text
        assert campaign_row(local_env).stop_requested is True
        live = client.get(f"/campaigns/{campaign_id}/live").text
        assert 'id="stop-requested"' in live

        marker.unlink()  # let the fit finish: the runner stops after it
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, output
    no_leftovers(str(marker))
    campaign = campaign_row(local_env)
    assert (campaign.state, campaign.stop_reason) == ("stopped", "stop_requested")
    with transaction(local_env, read_only=True) as session:
        names = list(session.scalars(select(CampaignStep.name).order_by(CampaignStep.id)))
    assert names == ["generate", "label", "fit"]
    page = client.get(f"/campaigns/{campaign_id}/iterations/0").text
    assert '<tr data-step="fit" data-state="succeeded">' in page
    assert "stop_requested" in page and 'hx-trigger="every 2s' not in page  # polling ended
