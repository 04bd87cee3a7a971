"""``campaign schedule/schedules/unschedule``: validation, storage, next runs, work pools.

And the scheduled flow's own endings: a campaign held by another process ends
the tick *Cancelled* ("skipped"), a finished campaign ends it *Completed* with
nothing to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from interphase.campaign.config import load_campaign_config
from interphase.campaign.lock import CampaignLock
from interphase.campaign.run import register_campaign
from interphase.campaign.schedules import ScheduleSpec, format_duration, parse_duration
from interphase.cli import app
from interphase.db.models import Campaign, CampaignSchedule, CampaignState
from interphase.db.session import transaction
from tests.campaign.conftest import TINY, CampaignEnv

runner = CliRunner()


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def embedded(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The tiny campaign registered; no Prefect server configured (the embedded default)."""
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", db_url)
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    register_campaign(db_url, load_campaign_config(TINY))
    yield db_url


def n_schedules(url: str) -> int:
    with transaction(url, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(CampaignSchedule)) or 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--interval", "5s"], "no campaign named 'nope' (known: tiny)"),
        (["tiny", "--interval", "5x"], "--interval must be a duration such as 30s"),
        (["tiny", "--interval", "0s"], "--interval must be at least 1s"),
        (["tiny", "--cron", "every day"], "--cron 'every day' is not a cron expression"),
        (["tiny", "--cron", "61 * * * *"], "--cron '61 * * * *' is not a cron expression"),
        (["tiny"], "give exactly one of --cron EXPR and --interval DURATION"),
        (["tiny", "--cron", "0 2 * * *", "--interval", "1h"], "give exactly one of --cron"),
        (["tiny", "--cron", "0 2 * * *", "--timezone", "Mars/Base"], "'Mars/Base' is not a known"),
    ],
    ids=["unknown-campaign", "bad-duration", "zero", "bad-cron", "cron-range", "neither", "both",
         "timezone"],
)  # fmt: skip
def test_schedule_refuses_bad_input_in_one_line_and_stores_nothing(
    embedded: str, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["campaign", "schedule", *args])
    assert result.exit_code == 2, result.output
    assert message in one_line(result.stderr)
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert n_schedules(embedded) == 0


def test_schedule_list_replace_and_unschedule(embedded: str) -> None:
    done = runner.invoke(
        app, ["campaign", "schedule", "tiny", "--interval", "90s", "--iterations-per-run", "1"]
    )
    assert done.exit_code == 0, done.output
    assert "scheduled: every 1m30s" in one_line(done.stdout)
    assert "`interphase serve` runs it" in one_line(done.stdout)
    listed = runner.invoke(app, ["campaign", "schedules"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if "tiny" in line)
    assert "every 1m30s" in row and "created" in row and row.count(":") >= 6  # three times
    assert "no Prefect server is up" in one_line(listed.stdout)

    again = runner.invoke(
        app, ["campaign", "schedule", "tiny", "--cron", "30 2 * * *", "--timezone", "Asia/Tokyo"]
    )
    assert again.exit_code == 0, again.output
    assert n_schedules(embedded) == 1  # replaced, not added
    listed = runner.invoke(app, ["campaign", "schedules"], env={"COLUMNS": "200"})
    row = next(line for line in listed.stdout.splitlines() if "tiny" in line)
    assert "cron 30 2 * * * (Asia/Tokyo)" in row and "02:30:00" in row and "until done" in row

    gone = runner.invoke(app, ["campaign", "unschedule", "tiny"])
    assert gone.exit_code == 0 and "unscheduled (was cron 30 2 * * *" in one_line(gone.stdout)
    assert "nothing is scheduled" in runner.invoke(app, ["campaign", "schedules"]).stdout
    twice = runner.invoke(app, ["campaign", "unschedule", "tiny"])
    assert twice.exit_code == 2 and "has no schedule; nothing to remove" in one_line(twice.stderr)
    serve = runner.invoke(app, ["serve"])
    assert serve.exit_code == 2 and "nothing is scheduled" in one_line(serve.stderr)


def test_durations_read_back_and_next_runs_follow_the_interval_anchor(
    prefect_url: str,
) -> None:
    from interphase_flows.schedule import next_runs

    for text, seconds in [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]:
        assert parse_duration(text) == seconds
        assert parse_duration(format_duration(seconds)) == seconds
    anchor = datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC)
    spec = ScheduleSpec(campaign="c", interval_seconds=600, created_at=anchor)
    after = anchor + timedelta(hours=5, minutes=3)
    times = next_runs(spec, 3, after=after)
    assert [t - anchor for t in times] == [timedelta(minutes=m) for m in (310, 320, 330)]
    berlin = ScheduleSpec(campaign="c", cron="0 2 * * *", timezone="Europe/Berlin")
    first = next_runs(berlin, 1, after=datetime(2026, 7, 1, tzinfo=UTC))[0]
    assert first.astimezone(UTC) == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # 02:00 CEST


def test_with_a_configured_server_schedule_creates_the_work_pool_deployment(
    campaign_env: CampaignEnv,
) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from interphase_flows.schedule import FLOW_NAME

    register_campaign(campaign_env.url, load_campaign_config(TINY))
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    env = {"INTERPHASE_PREFECT_WORK_POOL": pool}
    missing = campaign_env.cli("campaign", "schedule", "tiny", "--interval", "1h", **env)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert f"has no work pool {pool!r}" in one_line(missing.stderr)
    assert "Traceback" not in missing.stderr
    assert n_schedules(campaign_env.url) == 0  # refused by the server: nothing stored

    with temporary_settings({PREFECT_API_URL: campaign_env.prefect_url}):
        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        done = campaign_env.cli(
            "campaign", "schedule", "tiny", "--interval", "1h", "--iterations-per-run", "2", **env
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"work pool {pool!r}" in one_line(done.stdout)
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(f"{FLOW_NAME}/tiny")
        assert deployment.work_pool_name == pool
        assert deployment.parameters == {"campaign": "tiny", "iterations": 2}
        assert deployment.entrypoint == "interphase_flows.schedule.scheduled_campaign_flow"
        assert deployment.global_concurrency_limit is not None
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        (schedule,) = deployment.schedules
        assert schedule.schedule.interval == timedelta(hours=1)  # type: ignore[union-attr]

        gone = campaign_env.cli("campaign", "unschedule", "tiny", **env)
        assert gone.returncode == 0 and "deleted its deployment" in one_line(gone.stdout)
        with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
            client.read_deployment_by_name(f"{FLOW_NAME}/tiny")


def test_a_tick_of_a_held_campaign_is_cancelled_and_of_a_finished_one_does_nothing(
    embedded: str, prefect_url: str
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from interphase_flows.schedule import scheduled_campaign_flow

    with transaction(embedded, read_only=True) as session:
        campaign_id = session.scalars(select(Campaign.id)).one()
    with (
        temporary_settings({PREFECT_API_URL: prefect_url}),
        CampaignLock(embedded, campaign_id) as lock,
    ):
        state = scheduled_campaign_flow("tiny", iterations=1, url=embedded, return_state=True)
    assert state.is_cancelled(), state
    assert state.message is not None and state.message.startswith("skipped: campaign 'tiny'")
    assert lock.holder in state.message
    with transaction(embedded) as session:
        campaign = session.get_one(Campaign, campaign_id)
        campaign.state, campaign.stop_reason = CampaignState.finished.value, "max_iterations"
    with temporary_settings({PREFECT_API_URL: prefect_url}):
        state = scheduled_campaign_flow("tiny", iterations=1, url=embedded, return_state=True)
    assert state.is_completed() and state.message is not None
    assert state.message.startswith("nothing to do: campaign 'tiny' finished")
