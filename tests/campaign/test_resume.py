"""kill -9 a real campaign mid-step, resume it, and get the database of an uninterrupted run.

The reference is the same campaign (same file, same seed) run without
interruption on its own SQLite database, once per module. Compared: the
structures (content hash), the labels (values within round-off), the GP
hyperparameters per iteration, level and subset, and the jobs per iteration,
level and reason. Given its seed, a campaign is deterministic.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from interphase.db.models import (
    Campaign,
    CampaignStep,
    GPRModel,
    Iteration,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
)
from interphase.db.session import make_engine, transaction, upgrade
from tests.campaign.conftest import (
    TINY,
    CampaignEnv,
    kill_group,
    no_leftovers,
    processes_with,
    wait_for,
)

WORKERS = "2"


def database_content(url: str) -> dict[str, Any]:
    with transaction(url, read_only=True) as session:
        hashes = dict(session.execute(select(Structure.id, Structure.content_hash)).all())
        labels = {
            (hashes[sid], level): energy
            for sid, level, energy in session.execute(
                select(Label.structure_id, LevelOfTheory.name, Label.total_energy_hartree).join(
                    LevelOfTheory, Label.level_id == LevelOfTheory.id
                )
            )
        }
        index = dict(session.execute(select(Iteration.id, Iteration.index)).all())
        gps: dict[tuple[int, str, str], list[dict[str, float]]] = {}
        for model, level in session.execute(
            select(GPRModel, LevelOfTheory.name)
            .join(LevelOfTheory, GPRModel.level_id == LevelOfTheory.id)
            .order_by(GPRModel.id)
        ):
            gps.setdefault((index[model.iteration_id], level, model.subset_key), []).append(
                model.hyperparameters
            )
        jobs = Counter(
            (index[iteration_id], level, reason.value)
            for iteration_id, level, reason in session.execute(
                select(LabelingJob.iteration_id, LevelOfTheory.name, LabelingJob.reason).join(
                    LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id
                )
            )
        )
        states = Counter(session.scalars(select(LabelingJob.state)))
        steps = [
            (s.iteration_index, s.name, s.state)
            for s in session.scalars(
                select(CampaignStep).order_by(CampaignStep.iteration_index, CampaignStep.id)
            )
        ]
        campaign = session.scalars(select(Campaign)).one()
    return {
        "structures": sorted(hashes.values()),
        "labels": labels,
        "gps": gps,
        "jobs": jobs,
        "states": states,
        "steps": sorted(steps),
        "campaign": (campaign.state, campaign.stop_reason),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, prefect_url: str) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{root / 'reference.sqlite'}"
    upgrade(url)
    env = CampaignEnv(url, root / "data", prefect_url)
    result = env.cli("campaign", "run", str(TINY), "--workers", WORKERS)
    assert result.returncode == 0, result.stdout + result.stderr
    content = database_content(url)
    make_engine(url).dispose()
    return content


def assert_same(resumed: dict[str, Any], reference: dict[str, Any]) -> None:
    assert resumed["structures"] == reference["structures"]
    assert resumed["labels"].keys() == reference["labels"].keys()
    for key, energy in reference["labels"].items():
        assert resumed["labels"][key] == pytest.approx(energy, abs=1e-8), key
    assert resumed["gps"].keys() == reference["gps"].keys()
    for key, models in reference["gps"].items():
        assert len(resumed["gps"][key]) == len(models), key
        for mine, theirs in zip(resumed["gps"][key], models, strict=True):
            assert mine.keys() == theirs.keys()
            for name, value in theirs.items():
                assert np.isclose(mine[name], value, rtol=1e-5, atol=1e-12), (key, name)
    assert resumed["jobs"] == reference["jobs"]
    assert (
        resumed["states"]
        == reference["states"]
        == Counter({JobState.succeeded: sum(reference["jobs"].values())})
    )
    assert resumed["steps"] == reference["steps"]
    assert resumed["campaign"] == reference["campaign"] == ("finished", "max_iterations")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["0:generate", "0:label", "0:fit", "0:train"])
def test_kill_9_mid_step_then_resume_matches_an_uninterrupted_run(
    campaign_env: CampaignEnv, tmp_path: Path, where: str, reference: dict[str, Any]
) -> None:
    marker = tmp_path / "holding"
    process = campaign_env.start(
        "campaign", "run", str(TINY), "--workers", WORKERS,
        INTERPHASE_TEST_HOLD_AT=where, INTERPHASE_TEST_HOLD_FILE=str(marker),
    )  # fmt: skip
    try:
        wait_for(marker.exists, 300, f"the campaign to reach {where}")
    finally:
        kill_group(process)
    no_leftovers(str(campaign_env.data_dir))
    with transaction(campaign_env.url, read_only=True) as session:
        step = session.scalars(select(CampaignStep).order_by(CampaignStep.id.desc())).first()
        assert step is not None and (f"{step.iteration_index}:{step.name}", step.state) == (
            where,
            "running",
        )
    busy = campaign_env.cli("campaign", "list")
    assert "running" in busy.stdout  # killed, not stopped: the lock is left to expire
    resumed = campaign_env.cli("campaign", "resume", "tiny", "--workers", WORKERS)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not processes_with(str(campaign_env.data_dir))
    content = database_content(campaign_env.url)
    assert_same(content, reference)
    with transaction(campaign_env.url, read_only=True) as session:
        attempts = {
            (s.iteration_index, s.name): s.attempts for s in session.scalars(select(CampaignStep))
        }
    index, name = where.split(":")
    assert attempts.pop((int(index), name)) == 2  # the killed step ran again
    assert set(attempts.values()) == {1}  # nothing else was redone
