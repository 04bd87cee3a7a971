"""One runner per campaign; stop after the current step; Ctrl-C and SIGTERM; dead holders."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from interphase.campaign.config import load_campaign_config
from interphase.campaign.lock import CampaignBusyError, CampaignLock
from interphase.campaign.run import register_campaign
from interphase.db.models import Campaign, CampaignStep, JobState, LabelingJob, utcnow
from interphase.db.session import transaction
from tests.campaign.conftest import TINY, CampaignEnv, no_leftovers, processes_with, wait_for


def held(env: CampaignEnv, tmp_path: Path, where: str, *extra: str):  # type: ignore[no-untyped-def]
    marker = tmp_path / "holding"
    process = env.start(
        "campaign", "run", str(TINY), *extra,
        INTERPHASE_TEST_HOLD_AT=where, INTERPHASE_TEST_HOLD_FILE=str(marker),
    )  # fmt: skip
    wait_for(marker.exists, 300, f"the campaign to reach {where}")
    return process, marker


def campaign_row(url: str) -> Campaign:
    with transaction(url, read_only=True) as session:
        campaign = session.scalars(select(Campaign)).one()
        session.expunge(campaign)
        return campaign


@pytest.mark.slow
def test_second_runner_is_refused_and_stop_finishes_the_current_step(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    process, marker = held(campaign_env, tmp_path, "0:fit")
    try:
        busy = campaign_env.cli("campaign", "resume", "tiny")
        assert busy.returncode == 2 and "Traceback" not in busy.stderr
        assert f":{process.pid}:" in busy.stderr and "is being run by" in busy.stderr
        twice = campaign_env.cli("campaign", "run", str(TINY))
        assert twice.returncode == 2 and "exists already" in twice.stderr
        stop = campaign_env.cli("campaign", "stop", "tiny")
        assert stop.returncode == 0 and "stops after its current step" in stop.stdout
        marker.unlink()  # let the fit finish
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    campaign = campaign_row(campaign_env.url)
    assert (campaign.state, campaign.stop_reason) == ("stopped", "stop_requested")
    assert campaign.lock_holder is None
    with transaction(campaign_env.url, read_only=True) as session:
        names = [s.name for s in session.scalars(select(CampaignStep).order_by(CampaignStep.id))]
    assert names == ["generate", "label", "fit"]  # the fit finished, nothing after it ran
    idle = campaign_env.cli("campaign", "stop", "tiny")
    assert "not running (stopped)" in idle.stdout
    resumed = campaign_env.cli("campaign", "resume", "tiny")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert campaign_row(campaign_env.url).state == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_mid_labeling_releases_jobs_and_resumes(
    campaign_env: CampaignEnv, tmp_path: Path, signum: int
) -> None:
    process, marker = held(campaign_env, tmp_path, "0:label", "--workers", "2")
    try:
        if signum == signal.SIGINT:  # Ctrl-C reaches the whole foreground process group
            os.killpg(process.pid, signal.SIGINT)
        else:  # a scheduler's SIGTERM reaches the campaign process only
            process.send_signal(signal.SIGTERM)
        marker.unlink()
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, output
    assert "interrupted" in output and "Traceback" not in output
    no_leftovers(str(campaign_env.data_dir))
    campaign = campaign_row(campaign_env.url)
    assert (campaign.state, campaign.stop_reason) == ("stopped", "interrupted")
    assert campaign.lock_holder is None
    with transaction(campaign_env.url, read_only=True) as session:
        states = set(session.scalars(select(LabelingJob.state)))
    assert JobState.running not in states  # every job was released or finished
    resumed = campaign_env.cli("campaign", "resume", "tiny", "--workers", "2")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert campaign_row(campaign_env.url).state == "finished"
    assert not processes_with(str(campaign_env.data_dir))


def test_a_foreign_holder_blocks_until_its_lock_expires(local_env: str) -> None:
    campaign_id = register_campaign(local_env, load_campaign_config(TINY))
    with transaction(local_env) as session:
        campaign = session.get_one(Campaign, campaign_id)
        campaign.lock_holder = "elsewhere:4242:abcdef"
        campaign.lock_heartbeat_at = utcnow()
        campaign.lock_expires_at = utcnow() + timedelta(seconds=60)
    with pytest.raises(CampaignBusyError, match="elsewhere:4242:abcdef"):
        CampaignLock(local_env, campaign_id).acquire()
    with transaction(local_env) as session:
        session.get_one(Campaign, campaign_id).lock_expires_at = utcnow() - timedelta(seconds=1)
    with CampaignLock(local_env, campaign_id, lease_s=5) as lock:
        assert campaign_row(local_env).lock_holder == lock.holder
    assert campaign_row(local_env).lock_holder is None


def test_a_dead_holder_on_this_host_is_taken_over_at_once(local_env: str) -> None:
    import socket
    import subprocess
    import sys

    campaign_id = register_campaign(local_env, load_campaign_config(TINY))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    with transaction(local_env) as session:
        campaign = session.get_one(Campaign, campaign_id)
        campaign.lock_holder = f"{socket.gethostname()}:{gone.stdout.strip()}:dead00"
        campaign.lock_heartbeat_at = utcnow()
        campaign.lock_expires_at = utcnow() + timedelta(seconds=60)
    with CampaignLock(local_env, campaign_id, lease_s=5):
        pass
