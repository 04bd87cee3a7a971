"""Step outputs stored by earlier versions still load: typed, in `campaign show`, on resume.

``data/step_outputs_v1.json`` holds the outputs of every step of one iteration
of ``tiny.yaml`` and the iteration's summary, exactly as a run of the version
before the typed step contract stored them (``campaign_step.outputs``,
``iteration.summary``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from interphase.campaign.config import load_campaign_config
from interphase.campaign.context import StepContext
from interphase.campaign.loop import STEP_ORDER, load_inputs, read_outputs, step_of
from interphase.campaign.records import (
    StepName,
    begin_step,
    complete_step,
    get_iteration,
    steps_of,
)
from interphase.campaign.report import campaign_rows, campaign_story, iteration_table
from interphase.campaign.run import next_step, register_campaign
from interphase.campaign.steps import generate, select
from interphase.campaign.steps.summary import IterationSummary
from interphase.db.models import Campaign, StepState
from interphase.db.session import transaction
from interphase.execution import LocalExecutor
from tests.campaign.conftest import TINY

STORED = json.loads((Path(__file__).parent / "data" / "step_outputs_v1.json").read_text())


@pytest.mark.parametrize("step", list(STORED["steps"]))
def test_stored_outputs_load_and_store_back_unchanged(step: str) -> None:
    raw = STORED["steps"][step]
    assert read_outputs(step, raw).model_dump(mode="json") == raw


def test_the_stored_summary_loads_and_stores_back_unchanged() -> None:
    raw = STORED["summary"]
    assert IterationSummary.model_validate(raw).model_dump(mode="json") == raw


def test_a_renamed_key_is_an_error_not_a_silent_default() -> None:
    raw = {**STORED["steps"]["generate"]}
    raw["candidates"] = raw.pop("candidate_ids")
    with pytest.raises(ValidationError, match="candidates"):
        generate.Outputs.model_validate(raw)


def test_keys_older_versions_lacked_take_their_defaults() -> None:
    raw: dict[str, Any] = json.loads(json.dumps(STORED["steps"]["select"]))
    for level in raw["levels"].values():  # selections recorded before labels were reused
        for key in ("n_computed", "n_reused", "n_new_labels"):
            level.pop(key)
    levels = select.Outputs.model_validate(raw).levels
    assert all(v.new_labels == v.n_succeeded for v in levels.values())
    assert IterationSummary.model_validate({}).seconds == 0.0


def _stored_campaign(url: str) -> int:
    """A campaign of ``tiny.yaml`` whose first iteration is recorded in the stored format."""
    campaign_id = register_campaign(url, load_campaign_config(TINY))
    with transaction(url) as session:
        for step in STEP_ORDER:
            begin_step(session, campaign_id, 0, step)
            complete_step(
                session,
                campaign_id,
                0,
                step,
                STORED["steps"][step.value],
                seconds=1.0,
                compute_seconds=0.5,
            )
        iteration = get_iteration(session, campaign_id, 0)
        iteration.status, iteration.summary = "succeeded", STORED["summary"]
        session.get_one(Campaign, campaign_id).state = "stopped"
    return campaign_id


def test_a_campaign_stored_in_the_old_format_shows_and_resumes(db_url: str, tmp_path: Path) -> None:
    campaign_id = _stored_campaign(db_url)
    with transaction(db_url, read_only=True) as session:
        campaign = session.get_one(Campaign, campaign_id)
        rows = campaign_rows(session, campaign)
        story = campaign_story(session, "tiny")
        assert iteration_table("tiny", rows).row_count == 1
        notes = {
            row.name: read_outputs(row.name, row.outputs).note()
            for row in steps_of(session, campaign_id)
            if row.state == StepState.succeeded
        }
    summary = STORED["summary"]
    assert rows[0].labels == summary["labels_total"]
    assert rows[0].pool_fraction == summary["pool_uncertain_fraction"]
    assert any("test error GFN2-xTB" in line for line in story)
    assert notes["generate"].startswith(f"{summary['n_candidates']} candidates")
    # Resuming continues with the next iteration, whose first step reads the stored explore.
    assert next_step(db_url, campaign_id) == (1, StepName.generate)
    config = load_campaign_config(TINY)
    ctx = StepContext(
        url=db_url,
        campaign_id=campaign_id,
        campaign_name="tiny",
        config=config,
        iteration=1,
        iteration_id=0,
        step=StepName.generate,
        artifacts_dir=tmp_path,
        executor=LocalExecutor(workers=1),
        workers=1,
    )
    with transaction(db_url, read_only=True) as session:
        inputs = load_inputs(session, ctx, step_of(StepName.generate))
    assert inputs.explored.candidate_ids == STORED["steps"]["explore"]["candidate_ids"]
