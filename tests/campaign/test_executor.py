"""The campaign file's executor: labeling and GP fits of a campaign on a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from interphase.db.models import Campaign, JobAttempt, JobState, LabelingJob
from interphase.db.session import transaction
from tests.campaign.conftest import TINY, CampaignEnv, no_leftovers


def with_executor(tmp_path: Path, executor: dict) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["executor"] = {"workers": 2, **executor}  # subset fits go through the executor's map
    del data["labeling"]["workers"]  # executor.workers is the one worker count
    path = tmp_path / "tiny-dask.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_multi_host_executor_on_sqlite_is_refused_before_anything_is_stored(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    path = with_executor(tmp_path, {"kind": "dask", "address": "tcp://127.0.0.1:8786"})
    result = campaign_env.cli("campaign", "run", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "SQLite" in result.stderr or "sqlite" in result.stderr
    with transaction(campaign_env.url) as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_an_iteration_labels_and_fits_on_a_dask_local_cluster(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    path = with_executor(tmp_path, {"kind": "dask", "cluster": "local", "workers": 2})
    result = campaign_env.cli("campaign", "run", str(path), "--iterations", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    no_leftovers(str(campaign_env.data_dir))
    with transaction(campaign_env.url) as session:
        jobs = session.scalars(select(LabelingJob)).all()
        assert jobs and {job.state for job in jobs} == {JobState.succeeded}
        succeeded = session.execute(
            select(JobAttempt.job_id, func.count())
            .where(JobAttempt.state == JobState.succeeded)
            .group_by(JobAttempt.job_id)
        ).all()
        assert len(succeeded) == len(jobs) and {n for _, n in succeeded} == {1}
        campaign = session.scalars(select(Campaign)).one()
        assert (campaign.state, campaign.stop_reason) == ("finished", "max_iterations")
