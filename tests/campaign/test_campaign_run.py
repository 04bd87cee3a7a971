"""A whole campaign through the CLI on a real database: every step, every output recorded."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from interphase.campaign.loop import STEP_ORDER
from interphase.db.models import (
    Campaign,
    CampaignStep,
    CampaignStructure,
    CandidateScore,
    GPRModel,
    Iteration,
    JobReason,
    Label,
    LabelingJob,
    ModelArtifact,
    Structure,
    SyntheticLabel,
    TrainingRun,
)
from interphase.db.session import transaction
from tests.campaign.conftest import TINY, CampaignEnv


@pytest.mark.slow
def test_campaign_runs_the_whole_loop_and_tells_its_story(campaign_env: CampaignEnv) -> None:
    result = campaign_env.cli("campaign", "run", str(TINY))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped: max_iterations" in result.stdout
    assert "lineage of one uncertainty-selected label" in result.stdout

    with transaction(campaign_env.url) as session:
        campaign = session.scalars(select(Campaign)).one()
        assert (campaign.state, campaign.stop_reason) == ("finished", "max_iterations")
        assert campaign.lock_holder is None and campaign.run_seconds > 0
        steps = session.scalars(select(CampaignStep).order_by(CampaignStep.id)).all()
        assert [(s.iteration_index, s.name) for s in steps] == [
            (i, step.value) for i in range(2) for step in STEP_ORDER
        ]
        assert {s.state for s in steps} == {"succeeded"} and all(s.attempts == 1 for s in steps)
        iterations = session.scalars(select(Iteration).order_by(Iteration.index)).all()
        assert [it.status for it in iterations] == ["succeeded", "succeeded"]
        # Iteration 1's candidates are what the trained model explored in iteration 0.
        by_key = {(s.iteration_index, s.name): s for s in steps}
        explored = by_key[(0, "explore")].outputs["candidate_ids"]
        generated_1 = by_key[(1, "generate")]
        assert explored and generated_1.outputs["explored_ids"] == explored
        explore_rows = session.scalars(select(Structure).where(Structure.id.in_(explored))).all()
        assert {s.generator for s in explore_rows} <= {"explore_md", "explore_cluster"}
        assert all(s.parent_id is not None for s in explore_rows)
        # Two heads, one GP per subset and level, uncertainty jobs with their reason.
        runs = session.scalars(select(TrainingRun).order_by(TrainingRun.id)).all()
        assert len(runs) == 2 and all(r.status == "succeeded" for r in runs)
        assert sorted(runs[0].heads) == ["GFN1-xTB", "GFN2-xTB"]
        assert session.scalar(select(func.count()).select_from(ModelArtifact)) == 2
        assert session.scalar(select(func.count()).select_from(GPRModel)) > 0
        uncertain = session.scalars(
            select(LabelingJob).where(LabelingJob.reason == JobReason.uncertainty)
        ).all()
        assert uncertain and all(j.reason_detail["gpr_model_id"] is not None or
                                 j.reason_detail["predicted_std_per_atom_hartree"] is None
                                 for j in uncertain)  # fmt: skip
        assert session.scalar(select(func.count()).select_from(SyntheticLabel)) > 0
        assert session.scalar(select(func.count()).select_from(CandidateScore)) > 0
        # The test split is labeled but never trained on.
        test_ids = set(
            session.scalars(
                select(CampaignStructure.structure_id).where(CampaignStructure.role == "test")
            )
        )
        assert test_ids
        labeled = set(session.scalars(select(Label.structure_id)))
        assert test_ids <= labeled
        for run in runs:
            trained = set(
                session.scalars(
                    select(Label.structure_id).where(Label.id.in_(run.label_ids.tolist()))
                )
            )
            assert not trained & test_ids
        errors = iterations[1].summary["test_errors"]
        assert set(errors) == {"GFN1-xTB", "GFN2-xTB"}

    shown = campaign_env.cli("campaign", "show", "tiny")
    assert shown.returncode == 0, shown.stderr
    assert "iteration 1" in shown.stdout and "test error GFN2-xTB" in shown.stdout
    listed = campaign_env.cli("campaign", "list")
    assert "tiny" in listed.stdout and "finished" in listed.stdout

    again = campaign_env.cli("campaign", "run", str(TINY))
    assert again.returncode == 2 and "exists already" in again.stderr
    finished = campaign_env.cli("campaign", "resume", "tiny")
    assert finished.returncode == 2 and "nothing to resume" in finished.stderr

    with transaction(campaign_env.url) as session:
        n_labeled = session.scalar(
            select(func.count(func.distinct(Label.structure_id))).join(
                Structure, Label.structure_id == Structure.id
            )
        )
    frames = campaign_env.data_dir / "tiny.extxyz"
    exported = campaign_env.cli(
        "campaign", "export", "tiny", "--format", "extxyz", "--output", str(frames)
    )
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {n_labeled} labeled structures" in exported.stdout
    assert (
        frames.read_text().count("Lattice=") + frames.read_text().count("Properties=") >= n_labeled
    )
    # paper-json holds only GFN2-xTB charges: entries with GFN1-xTB charges are left out, said so.
    paper = campaign_env.data_dir / "tiny.json"
    exported = campaign_env.cli("campaign", "export", "tiny", "--output", str(paper))
    assert exported.returncode == 0, exported.stderr
    left_out = n_labeled - len(json.loads(paper.read_text()))
    assert left_out > 0 and f"left out {left_out}" in exported.stderr
