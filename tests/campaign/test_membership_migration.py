"""Migration 0007 keeps the campaigns of a database made by the previous interphase as they were.

The code of the last commit before campaign membership (schema 0006s) runs two
campaigns, with different seeds, into one database. Each owns its structures
through ``structure.campaign_id`` and its test split through
``campaign_test_structure``, and trained and fitted on every label of its
structures. After :func:`interphase.db.session.upgrade`, the same campaigns read
through :mod:`interphase.db.membership` must hold the same structures, the same
test split and the same labels, byte for byte, no other row may have moved, and
``campaign show`` of the new code still tells their story.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.models import Label, Structure
from interphase.db.session import current_revision, make_engine, transaction, upgrade
from tests.campaign.conftest import ROOT, CampaignEnv
from tests.conftest import BACKENDS, POSTGRES_ADMIN_URL, _admin_execute

#: The parent of the first commit after schema 0006s: the code that made today's campaigns.
PREVIOUS_COMMIT = "b296824"
PREVIOUS_REVISION = "0006s"
#: Two campaigns of the tiny file; the second with another seed, so it stores structures of its own.
CAMPAIGNS = {"first": 7, "second": 8}


@dataclass(frozen=True)
class CampaignView:
    """What one campaign sees of the database: its structures, test split and labels."""

    structure_ids: frozenset[int]
    test_ids: frozenset[int]
    label_ids: frozenset[int]
    #: sha256 over its labels' (id, structure, level, stored total energy), sorted.
    labels_sha256: str


def labels_sha256(rows: list[tuple[int, int, int, float | None]]) -> str:
    """Hash of label rows as stored (the energy's repr is exact for a float read back)."""
    digest = hashlib.sha256()
    for row in sorted(rows):
        digest.update(repr(row).encode())
    return digest.hexdigest()


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, without any schema (SQLite file or PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'interphase.sqlite'}"
        yield url
        make_engine(url).dispose()
        return
    assert POSTGRES_ADMIN_URL is not None
    name = f"interphase_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    try:
        yield url
    finally:
        make_engine(url).dispose()
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def previous_code(destination: Path) -> Path:
    """The platform, flows and tiny campaign file of :data:`PREVIOUS_COMMIT`, extracted."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_COMMIT}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:
        pytest.skip(
            f"commit {PREVIOUS_COMMIT} (schema {PREVIOUS_REVISION}) is not in {ROOT}: "
            "run from a full git clone"
        )
    paths = ["platform", "flows", "tests/campaign/tiny.yaml"]
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS_COMMIT, *paths],
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def run_previous(
    code: Path, env: CampaignEnv, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The previous code's CLI, in its own process, on the test database."""
    return subprocess.run(
        [sys.executable, "-m", "interphase.cli", *args],
        env=env.env(PYTHONPATH=f"{code / 'platform'}:{code / 'flows'}"),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=code,
    )


def campaign_ids(session: Session) -> dict[str, int]:
    rows = session.execute(text("SELECT name, id FROM campaign")).all()
    return {name: int(campaign_id) for name, campaign_id in rows}


def row_counts(session: Session) -> dict[str, int]:
    """Rows of every table but Alembic's."""
    tables = inspect(session.connection()).get_table_names()
    return {
        table: int(session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())
        for table in tables
        if table != "alembic_version"
    }


def ids(session: Session, query: str, campaign_id: int) -> frozenset[int]:
    return frozenset(int(i) for i in session.scalars(text(query), {"c": campaign_id}))


def previous_view(session: Session, campaign_id: int) -> CampaignView:
    """The campaign as schema 0006s stored it (raw SQL: the ORM models are the new ones)."""
    labels = session.execute(
        text(
            "SELECT l.id, l.structure_id, l.level_id, l.total_energy_hartree FROM label l "
            "JOIN structure s ON s.id = l.structure_id WHERE s.campaign_id = :c"
        ),
        {"c": campaign_id},
    ).all()
    return CampaignView(
        structure_ids=ids(session, "SELECT id FROM structure WHERE campaign_id = :c", campaign_id),
        test_ids=ids(
            session,
            "SELECT structure_id FROM campaign_test_structure WHERE campaign_id = :c",
            campaign_id,
        ),
        label_ids=frozenset(int(row[0]) for row in labels),
        labels_sha256=labels_sha256([tuple(row) for row in labels]),
    )


def membership_view(session: Session, campaign_id: int) -> CampaignView:
    """The campaign as the membership relation gives it."""
    labels = session.execute(
        select(Label.id, Label.structure_id, Label.level_id, Label.total_energy_hartree).where(
            membership.training_label(campaign_id)
        )
    ).all()
    return CampaignView(
        structure_ids=frozenset(
            session.scalars(select(Structure.id).where(membership.holds(campaign_id)))
        ),
        test_ids=frozenset(membership.test_ids(session, campaign_id)),
        label_ids=frozenset(int(row[0]) for row in labels),
        labels_sha256=labels_sha256([tuple(row) for row in labels]),
    )


def trained_label_ids(session: Session, campaign_id: int) -> frozenset[int]:
    """Every label the campaign's training runs and GPs used (``<i8`` bytes in 0006s)."""
    blobs = list(
        session.scalars(
            text("SELECT label_ids FROM training_run WHERE campaign_id = :c"), {"c": campaign_id}
        )
    )
    blobs += session.scalars(
        text("SELECT training_label_ids FROM gpr_model WHERE campaign_id = :c"), {"c": campaign_id}
    )
    return frozenset(int(i) for blob in blobs for i in np.frombuffer(bytes(blob), dtype="<i8"))


@pytest.mark.slow
def test_migration_keeps_each_campaign_its_structures_test_split_and_labels(
    empty_db_url: str, tmp_path: Path, prefect_url: str
) -> None:
    code = previous_code(tmp_path / "previous")
    env = CampaignEnv(empty_db_url, tmp_path / "data", prefect_url)
    created = run_previous(code, env, "db", "upgrade")
    assert created.returncode == 0, created.stdout + created.stderr
    assert current_revision(empty_db_url) == PREVIOUS_REVISION
    tiny = yaml.safe_load((code / "tests" / "campaign" / "tiny.yaml").read_text())
    for name, seed in CAMPAIGNS.items():
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({**tiny, "seed": seed}))
        ran = run_previous(code, env, "campaign", "run", str(config), "--name", name)
        assert ran.returncode == 0, f"{name}: {ran.stdout}{ran.stderr}"

    with transaction(empty_db_url, read_only=True) as session:
        campaigns = campaign_ids(session)
        assert set(campaigns) == set(CAMPAIGNS)
        before = {name: previous_view(session, c) for name, c in campaigns.items()}
        trained = {name: trained_label_ids(session, c) for name, c in campaigns.items()}
        counts = row_counts(session)
    for name, view in before.items():  # both campaigns own something to keep
        assert view.structure_ids and view.test_ids and view.label_ids and trained[name], name
        assert view.test_ids <= view.structure_ids and trained[name] <= view.label_ids, name

    upgrade(empty_db_url)

    with transaction(empty_db_url, read_only=True) as session:
        after = {name: membership_view(session, c) for name, c in campaigns.items()}
        counts_after = row_counts(session)
    for name in CAMPAIGNS:
        assert after[name] == before[name], name
    del counts["campaign_test_structure"]
    assert "campaign_test_structure" not in counts_after
    assert {table: counts_after[table] for table in counts} == counts
    for name in CAMPAIGNS:  # and still tells its story
        shown = env.cli("campaign", "show", name)
        assert shown.returncode == 0, f"{name}: {shown.stdout}{shown.stderr}"
        assert "stopped: max_iterations" in shown.stdout, name
