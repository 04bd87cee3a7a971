"""``interphase serve`` for real: its own Prefect server, ticks every few seconds, real runs.

The tiny campaign (two iterations) is scheduled every 4 s, one iteration per
run. The second run holds in iteration 1's fit (the hold point of
``interphase.campaign.faults``) while further ticks arrive: they must be
skipped, not queued or run beside it. Then the campaign finishes, a later tick
has nothing to do, and SIGINT stops serve and every process it started.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from interphase.campaign.config import load_campaign_config
from interphase.campaign.run import register_campaign
from interphase.db.models import Campaign, CampaignStep, Iteration
from interphase.db.session import transaction
from tests.campaign.conftest import TINY, CampaignEnv, no_leftovers, processes_with, wait_for

#: The runner looks for due ticks this often (Prefect's default is 10 s).
FAST_RUNNER = {"PREFECT_RUNNER_POLL_FREQUENCY": "2"}


@pytest.fixture
def embedded_env(db_url: str, tmp_path: Path) -> CampaignEnv:
    """Processes with no PREFECT_API_URL: serve starts its own server under the data dir."""

    class Embedded(CampaignEnv):
        def env(self, **extra: str) -> dict[str, str]:
            env = super().env(**extra)
            env.pop("PREFECT_API_URL")
            return env

    env = Embedded(db_url, tmp_path / "data", "")
    register_campaign(db_url, load_campaign_config(TINY))
    return env


def ticks(env: CampaignEnv) -> list:  # type: ignore[type-arg]
    """The ticks serve's server has seen (it publishes its URL in the data dir)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from interphase_flows.schedule import recent_runs

    info = json.loads((env.data_dir / "prefect" / "serve.json").read_text())
    with temporary_settings({PREFECT_API_URL: info["api_url"]}):
        return recent_runs(limit=200)


def campaign(url: str) -> Campaign:
    with transaction(url, read_only=True) as session:
        row = session.scalars(select(Campaign)).one()
        session.expunge(row)
        return row


def stop(process: subprocess.Popen[str], signum: int = signal.SIGINT) -> str:
    if process.poll() is None:
        process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    return output


@pytest.mark.slow
def test_serve_runs_the_schedule_skips_overlapping_ticks_and_stops_cleanly(
    embedded_env: CampaignEnv, tmp_path: Path
) -> None:
    env = embedded_env
    scheduled = env.cli(
        "campaign", "schedule", "tiny", "--interval", "4s", "--iterations-per-run", "1"
    )
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    marker = tmp_path / "holding"
    serve = env.start(
        "serve", INTERPHASE_TEST_HOLD_AT="1:fit", INTERPHASE_TEST_HOLD_FILE=str(marker),
        **FAST_RUNNER,
    )  # fmt: skip
    try:
        wait_for(marker.exists, 300, "the second scheduled run to hold in iteration 1's fit")
        with transaction(env.url, read_only=True) as session:
            first = session.scalars(select(Iteration).where(Iteration.index == 0)).one()
            assert first.status == "succeeded"  # iteration 0 ran from the schedule
        before = sum(tick.skipped for tick in ticks(env))
        wait_for(
            lambda: sum(tick.skipped for tick in ticks(env)) >= before + 2, 120,
            "two more ticks to be skipped while the second run holds",
        )  # fmt: skip
        running = [tick for tick in ticks(env) if tick.state == "RUNNING"]
        assert len(running) == 1  # the held run, alone
        listed = env.cli("campaign", "schedules", COLUMNS="200")
        assert listed.returncode == 0 and "skipped tick" in listed.stdout, listed.stdout

        marker.unlink()
        wait_for(lambda: campaign(env.url).state == "finished", 300, "the campaign to finish")
        wait_for(
            lambda: any(t.message.startswith("nothing to do") for t in ticks(env)), 120,
            "a tick of the finished campaign",
        )  # fmt: skip
        final = ticks(env)
    finally:
        output = stop(serve)
    assert serve.returncode == 0, output
    assert "Traceback" not in output and "stopped serving" in output
    assert "serving 1 schedule(s)" in output and "tiny: every 4s, 1 iteration(s) per run" in output
    assert "skipped: Deployment concurrency limit reached." in output
    assert "completed: stopped (run_limit)" in output and "completed: finished (max_iter" in output
    no_leftovers(str(env.data_dir))
    assert not (env.data_dir / "prefect" / "serve.json").exists()

    worked = [t for t in final if t.state == "COMPLETED" and not t.message.startswith("nothing")]
    assert len(worked) == 2  # one iteration each; every other tick skipped or idle
    assert not [t for t in final if t.state in ("FAILED", "CRASHED")]
    with transaction(env.url, read_only=True) as session:
        iterations = session.scalars(select(Iteration).order_by(Iteration.index)).all()
        steps = session.scalars(select(CampaignStep)).all()
    assert [(i.index, i.status) for i in iterations] == [(0, "succeeded"), (1, "succeeded")]
    assert all(step.attempts == 1 and step.state == "succeeded" for step in steps)
    assert campaign(env.url).lock_holder is None


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_serve_stopped_mid_run_stops_the_run_and_leaves_nothing_running(
    embedded_env: CampaignEnv, tmp_path: Path, how: str
) -> None:
    env = embedded_env
    scheduled = env.cli("campaign", "schedule", "tiny", "--interval", "5s")
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    marker = tmp_path / "holding"
    serve = env.start(
        "serve", INTERPHASE_TEST_HOLD_AT="0:fit", INTERPHASE_TEST_HOLD_FILE=str(marker),
        **FAST_RUNNER,
    )  # fmt: skip
    try:
        wait_for(marker.exists, 300, "the first scheduled run to hold in iteration 0's fit")
        run_pid = int(marker.read_text())
        assert run_pid != serve.pid and run_pid in processes_with(str(env.data_dir))
        if how == "kill-9":
            serve.send_signal(signal.SIGKILL)
            serve.wait(timeout=30)
        output = stop(serve, signal.SIGTERM)
    finally:
        if serve.poll() is None:
            serve.kill()
    # Well under the ~62 s that one Prefect API call spends retrying a dead server:
    # a run that waits on its dead API instead of exiting fails here.
    no_leftovers(str(env.data_dir), timeout=30)
    if how == "sigterm":
        assert serve.returncode == 0, output
        assert "Traceback" not in output and "cancelled: interrupted" in output, output
    # The run got SIGTERM (from Prefect's runner, or from the kernel when serve died):
    # it stopped, released the campaign, and a resume continues at the held step.
    row = campaign(env.url)
    assert (row.state, row.stop_reason, row.lock_holder) == ("stopped", "interrupted", None)
    resumed = env.cli("campaign", "resume", "tiny", "--iterations", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "iteration 0 · fit" in resumed.stdout
