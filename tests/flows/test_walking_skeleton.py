"""The walking-skeleton flow under Prefect's test harness, on a real database."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from flows.runtime import configure_local_prefect


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    configure_local_prefect(tmp_path_factory.mktemp("prefect"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.mark.slow
def test_one_iteration_records_everything_with_lineage(local_env: str, prefect_harness) -> None:  # type: ignore[no-untyped-def]
    from flows.campaign import walking_skeleton
    from flows.demo import DemoConfig
    from interphase.db.models import (
        GPRModel,
        Iteration,
        JobReason,
        JobState,
        Label,
        LabelingJob,
        ModelArtifact,
        TrainingRun,
    )
    from interphase.db.session import transaction

    config = DemoConfig(
        campaign_name="test",
        cluster_sizes=(4,),
        n_initial=6,
        n_candidates=6,
        max_selected=2,
        threshold_per_atom_hartree=1e-6,
        gp_iterations=5,
        training_epochs=3,
    )
    report = walking_skeleton(config)

    with transaction(local_env) as session:
        iteration = session.scalars(select(Iteration)).one()
        assert iteration.status == "succeeded" and iteration.finished_at is not None
        jobs = session.scalars(select(LabelingJob)).all()
        assert sum(j.reason == JobReason.initial for j in jobs) == 6
        uncertain = [j for j in jobs if j.reason == JobReason.uncertainty]
        assert len(uncertain) == 2
        for job in uncertain:
            assert job.reason_detail["gpr_model_id"] is not None
            assert job.reason_detail["predicted_std_per_atom_hartree"] > 1e-6
        for job in jobs:
            assert job.state in (JobState.succeeded, JobState.failed)
            assert (job.state == JobState.failed) == (job.error_class is not None)
        labels = session.scalars(select(Label)).all()
        assert len(labels) == sum(j.state == JobState.succeeded for j in jobs)
        assert len(session.scalars(select(GPRModel)).all()) == 2  # fitted twice, one subset
        run = session.scalars(select(TrainingRun)).one()
        assert run.status == "succeeded" and run.heads == ["GFN2-xTB"]
        np.testing.assert_array_equal(np.sort(run.label_ids), np.sort([lb.id for lb in labels]))
        artifact = session.scalars(select(ModelArtifact)).one()
        digest = hashlib.sha256(Path(artifact.path).read_bytes()).hexdigest()
        assert digest == artifact.sha256
    assert report["candidate_std"]["before"] is not None


def test_example_configuration_is_valid_and_bad_ones_are_refused(tmp_path: Path) -> None:
    from flows.demo import load_config

    root = Path(__file__).parents[2]
    config = load_config(root / "examples" / "demo.json", seed=0)
    assert config.cluster_sizes == (6, 8) and config.level == "GFN2-xTB"
    bad = tmp_path / "bad.json"
    bad.write_text('{"campaign_name": "x", "n_initial": 1, "typo_field": 3}')
    with pytest.raises(ValueError, match="n_initial") as info:
        load_config(bad, seed=0)
    assert "typo_field" in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.json", seed=0)
