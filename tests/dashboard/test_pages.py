"""Every page and fragment renders from a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from interphase.db.models import JobAttempt, ModelArtifact, Structure
from interphase.db.session import transaction
from interphase.io.extxyz import iter_extxyz
from tests.dashboard.campaign_data import BAD_LEVEL, LEVEL, build_campaign


@pytest.fixture
def campaign(local_env: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    return build_campaign(local_env, tmp_path / "artifacts")


@pytest.mark.slow
def test_every_page_renders(client: TestClient, campaign, local_env: str) -> None:  # type: ignore[no-untyped-def]
    failed = campaign.failed_job_ids[0]
    pages = {
        "/": ["li-clusters", "iterations"],
        "/campaigns": ["li-clusters"],
        "/jobs": ["Failures by error", "SCFNotConverged", "InvalidInput", "Stuck work"],
        f"/jobs?campaign={campaign.campaign_id}&state=failed": ["SCF not converged"],
        "/jobs/live": ['id="jobs-live"', "hx-trigger"],
        f"/jobs/{failed}": ["Attempts", "max_iterations", "Resubmit this job"],
        f"/jobs/{failed}/live": ["SCFNotConverged"],
        "/structures": ["lattice_noise", "gpr-augment", "molecule"],
        f"/structures/{campaign.cluster_ids[0]}": ["Lineage up", LEVEL, "GP ", "training run 1"],
        f"/structures/{campaign.augmented_ids[0]}": ["Synthetic labels", "training run 2"],
        "/models": ["run 1", "run 2", "succeeded"],
        f"/models/{campaign.training_run_id}": ["sha256", "Training curves", "chart-loss"],
        f"/models/{campaign.training_run_id}/live": ["chart-energy"],
    }
    for path, expected in pages.items():
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        for text in expected:
            assert text in response.text, (path, text)
    with transaction(local_env) as session:
        augmented = session.get_one(Structure, campaign.augmented_ids[0])
        parent_id = augmented.parent_id
    page = client.get(f"/structures/{campaign.augmented_ids[0]}").text
    assert f'href="/structures/{parent_id}"' in page  # the chain of parents


def test_errors_are_one_line_pages(client: TestClient) -> None:
    bad_state = client.get("/jobs?state=finished")
    assert bad_state.status_code == 400
    assert "unknown job state &#39;finished&#39;; choose pending" in bad_state.text
    assert client.get("/jobs?campaign=abc").status_code == 400
    assert client.get("/jobs?before=x1").status_code == 400
    missing = client.get("/jobs/12345")
    assert missing.status_code == 404 and "no labeling job 12345" in missing.text
    fragment = client.get("/jobs/12345/live", headers={"HX-Request": "true"})
    assert fragment.status_code == 404 and fragment.text.startswith('<div class="message error"')
    assert client.get("/structures/999").status_code == 404
    assert client.get("/models/999").status_code == 404
    assert client.get("/models/1/artifacts/1").status_code == 404


@pytest.mark.slow
def test_structure_download_is_extxyz_with_its_labels(
    client: TestClient,
    campaign,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    structure_id = campaign.cluster_ids[0]
    response = client.get(f"/structures/{structure_id}/extxyz")
    assert response.status_code == 200
    assert f'filename="structure-{structure_id}.extxyz"' in response.headers["content-disposition"]
    path = tmp_path / "one.extxyz"
    path.write_text(response.text)
    (record,) = list(iter_extxyz(path))
    assert record.n_atoms == 4 and set(record.symbols) == {"Li"}
    assert LEVEL in record.labels
    assert record.labels[LEVEL].total_energy_hartree is not None
    cell = client.get(f"/structures/{campaign.periodic_id}/extxyz").text
    assert 'Lattice="3.44 0' in cell and 'pbc="T T T"' in cell


@pytest.mark.slow
def test_model_artifact_download_matches_its_checksum(
    client: TestClient,
    campaign,
    local_env: str,  # type: ignore[no-untyped-def]
) -> None:
    import hashlib

    with transaction(local_env) as session:
        artifact = session.scalars(
            select(ModelArtifact).where(ModelArtifact.training_run_id == campaign.training_run_id)
        ).one()
        artifact_id, sha256 = artifact.id, artifact.sha256
    response = client.get(f"/models/{campaign.training_run_id}/artifacts/{artifact_id}")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == sha256
    other_run = client.get(f"/models/{campaign.training_run_id + 1}/artifacts/{artifact_id}")
    assert other_run.status_code == 404  # an artifact is served under its own run only


@pytest.mark.slow
def test_job_detail_shows_every_attempt(client: TestClient, campaign, local_env: str) -> None:  # type: ignore[no-untyped-def]
    with transaction(local_env) as session:
        retried = session.scalars(
            select(JobAttempt.job_id).where(JobAttempt.number == 2).limit(1)
        ).first()
        invalid = session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == campaign.invalid_job_ids[0])
        ).one()
        worker, pid = invalid.worker, invalid.pid
    page = client.get(f"/jobs/{campaign.invalid_job_ids[0]}").text
    assert BAD_LEVEL in page and "InvalidInput" in page and "tblite has no method" in page
    assert worker is not None and worker in page and f">{pid}<" in page
    if retried is not None:  # an SCF the retry policy rescued: two attempts, both shown
        twice = client.get(f"/jobs/{retried}").text
        assert "retry" in twice and twice.count('<tr class="sub">') >= 2
