"""A long step reports how far it is: stored on its row, shown on the campaign pages.

The reported case: during a 15-minute training step the campaign page said
"took 59 s" (the finished steps only) and "last activity 14.9 min ago" (when
the step started). Now the step's newest progress ("train: epoch 12 of 50")
is on its ``campaign_step`` row, a running iteration's time counts the running
step, and progress counts as activity.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from interphase.campaign.config import load_campaign_config
from interphase.campaign.loop import STEP_ORDER
from interphase.campaign.progress import ProgressRecorder, StepProgress
from interphase.campaign.records import StepName, begin_step, complete_step
from interphase.campaign.report import campaign_story
from interphase.campaign.run import execute_step, register_campaign
from interphase.db.models import Campaign, CampaignState, CampaignStep, Iteration, utcnow
from interphase.db.session import transaction
from tests.campaign.conftest import TINY


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running_train_step(url: str, started_minutes_ago: float) -> int:
    """Campaign ``tiny``: generate done in 59 s, train running for ``started_minutes_ago``."""
    campaign_id = register_campaign(url, load_campaign_config(TINY))
    started = utcnow() - timedelta(minutes=started_minutes_ago)
    with transaction(url) as session:
        campaign = session.get_one(Campaign, campaign_id)
        campaign.state = CampaignState.running.value
        campaign.updated_at = started
        begin_step(session, campaign_id, 0, StepName.generate)
        complete_step(
            session, campaign_id, 0, StepName.generate, {}, seconds=59.0, compute_seconds=50.0
        )
        campaign.updated_at = started  # complete_step touched it; the step finished long ago
        step = begin_step(session, campaign_id, 0, StepName.train)
        step.started_at = started
        for row in session.scalars(select(CampaignStep)):
            if row.name == StepName.generate.value:
                row.started_at = started - timedelta(seconds=59)
                row.finished_at = started
        # Nothing else happened since: the campaign and its iteration started before.
        campaign.created_at = started - timedelta(seconds=60)
        for iteration in session.scalars(select(Iteration)):
            iteration.started_at = started - timedelta(seconds=59)
    return campaign_id


def stored(url: str, campaign_id: int, name: StepName) -> CampaignStep:
    with transaction(url, read_only=True) as session:
        row = session.scalars(
            select(CampaignStep).where(
                CampaignStep.campaign_id == campaign_id, CampaignStep.name == name.value
            )
        ).one()
        session.expunge(row)
        return row


def test_progress_is_stored_at_most_once_a_second_and_always_at_the_end(local_env: str) -> None:
    campaign_id = running_train_step(local_env, 15)
    clock = FakeClock()
    record = ProgressRecorder(local_env, campaign_id, 0, StepName.train, clock=clock)
    record("train: epoch", 12, 50)
    row = stored(local_env, campaign_id, StepName.train)
    assert row.progress == {"description": "train: epoch", "done": 12, "total": 50}
    assert row.progress_at is not None
    record("train: epoch", 13, 50)  # the same second: not written
    assert stored(local_env, campaign_id, StepName.train).progress["done"] == 12  # type: ignore[index]
    clock.now += 1.5
    record("train: epoch", 14, 50)
    assert stored(local_env, campaign_id, StepName.train).progress["done"] == 14  # type: ignore[index]
    record("train: epoch", 50, 50)  # the last one is always written
    assert stored(local_env, campaign_id, StepName.train).progress["done"] == 50  # type: ignore[index]
    # A step run again starts without the last attempt's count.
    with transaction(local_env) as session:
        begin_step(session, campaign_id, 0, StepName.train)
    again = stored(local_env, campaign_id, StepName.train)
    assert again.progress is None and again.attempts == 2


def test_progress_text() -> None:
    assert StepProgress(description="train: epoch", done=12, total=50).text == (
        "train: epoch 12 of 50"
    )
    assert StepProgress(description="label: jobs finished", done=1200, total=None).text == (
        "label: jobs finished 1,200"
    )
    waiting = StepProgress(description="label: waiting for 2 job(s) running elsewhere", done=0)
    assert waiting.text == "label: waiting for 2 job(s) running elsewhere"
    assert StepProgress.from_row(None) is None
    assert StepProgress.from_row({"done": "many"}) is None  # unreadable: shown as no progress


def _row_of(page: str, marker: str) -> str:
    match = re.search(rf"<tr {marker}.*?</tr>", page, re.S)
    assert match is not None, marker
    return match.group(0)


def test_a_running_train_step_shows_epoch_k_of_n_and_its_time_so_far(
    client: TestClient, local_env: str
) -> None:
    campaign_id = running_train_step(local_env, 15)
    ProgressRecorder(local_env, campaign_id, 0, StepName.train)("train: epoch", 12, 50)

    listing = client.get("/campaigns").text
    row = _row_of(listing, f'data-campaign="{campaign_id}"')
    assert "iteration 0 · train: epoch 12 of 50" in row
    last_activity = re.findall(r'<td class="nowrap" title="[^"]*">([^<]*)</td>', row)
    assert last_activity and re.fullmatch(r"[\d.]+ m?s ago", last_activity[-1]), last_activity

    for path in (f"/campaigns/{campaign_id}", f"/campaigns/{campaign_id}/live"):
        page = client.get(path).text
        assert '<strong id="current-progress">train: epoch 12 of 50</strong>' in page, path
        assert re.search(r"· updated [\d.]+ m?s ago", page), path  # the progress, not 15 min
        took = _row_of(page, 'data-iteration="0"')
        # 59 s of generate plus 15 min of train, still growing: not "59 s".
        assert re.search(r"1[56]\.\d min so far", took), took

    for path in (
        f"/campaigns/{campaign_id}/iterations/0",
        f"/campaigns/{campaign_id}/iterations/0/live",
    ):
        page = client.get(path).text
        train = _row_of(page, 'data-step="train"')
        assert 'data-state="running"' in train
        assert "train: epoch 12 of 50" in train
        assert re.search(r"15\.\d min so far", train), train
        assert "59 s" in _row_of(page, 'data-step="generate"')

    with transaction(local_env, read_only=True) as session:
        story = campaign_story(session, "tiny")  # `interphase campaign show`
    assert re.fullmatch(
        r"now: iteration 0 · train: epoch 12 of 50 \(running 9\d\d s, progress \d s ago\)",
        story[1],
    ), story


class PagesWhileTraining:
    """A reporter that, at each epoch the train step reports, reads the row and the page."""

    def __init__(self, client: TestClient, url: str, campaign_id: int) -> None:
        self.client, self.url, self.campaign_id = client, url, campaign_id
        self.seen: list[tuple[int, dict[str, Any] | None, str]] = []

    def step_started(self, iteration: int, step: StepName) -> None:
        return None

    def step_finished(
        self, iteration: int, step: StepName, outputs: dict[str, Any], seconds: float
    ) -> None:
        return None

    def progress(self, description: str, done: int, total: int | None) -> None:
        if description != "train: epoch":
            return
        row = stored(self.url, self.campaign_id, StepName.train)
        assert row.state == "running"
        page = self.client.get(f"/campaigns/{self.campaign_id}/iterations/0/live").text
        self.seen.append((done, row.progress, _row_of(page, 'data-step="train"')))


@pytest.mark.slow
def test_the_train_step_stores_its_epochs_while_it_trains(
    client: TestClient, local_env: str, tmp_path: Path
) -> None:
    """Iteration 0 of tiny.yaml up to train, in this process; pages read mid-training."""
    config = load_campaign_config(TINY)
    campaign_id = register_campaign(local_env, config)
    for step in STEP_ORDER[: STEP_ORDER.index(StepName.train)]:
        execute_step(local_env, campaign_id, 0, step, artifacts_dir=tmp_path / "artifacts")
    watcher = PagesWhileTraining(client, local_env, campaign_id)
    execute_step(
        local_env,
        campaign_id,
        0,
        StepName.train,
        reporter=watcher,
        artifacts_dir=tmp_path / "artifacts",
    )
    epochs = config.training.epochs
    assert [done for done, _, _ in watcher.seen] == list(range(epochs + 1))
    # The first report and the last epoch are always stored before the page is read.
    first, last = watcher.seen[0], watcher.seen[-1]
    assert first[1] == {"description": "train: epoch", "done": 0, "total": epochs}
    assert f"train: epoch 0 of {epochs}" in first[2]
    assert last[1] == {"description": "train: epoch", "done": epochs, "total": epochs}
    assert f"train: epoch {epochs} of {epochs}" in last[2] and "so far" in last[2]
    for done, progress, _ in watcher.seen:
        assert progress is not None and progress["done"] <= done  # never ahead of training
    finished = stored(local_env, campaign_id, StepName.train)
    assert finished.state == "succeeded" and finished.seconds is not None
