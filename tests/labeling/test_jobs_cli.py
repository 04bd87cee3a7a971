"""``interphase jobs`` end to end, and migration 0002 on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.session import make_engine, upgrade
from tests.labeling.job_helpers import queue_jobs, waters


def test_migration_0002_upgrades_and_downgrades(db_url: str) -> None:
    from alembic import command

    from interphase.db.session import _alembic_config

    def columns(table: str) -> set[str]:
        return {c["name"] for c in inspect(make_engine(db_url)).get_columns(table)}

    assert {"heartbeat_at", "requeued_by"} <= columns("labeling_job")
    assert {"worker", "trigger", "pid", "exit_code", "peak_memory_mb"} <= columns("job_attempt")
    command.downgrade(_alembic_config(db_url), "0001")
    make_engine(db_url).dispose()
    assert "requeued_by" not in columns("labeling_job")
    upgrade(db_url)
    make_engine(db_url).dispose()
    assert "pid" in columns("job_attempt")


@pytest.mark.slow
def test_jobs_run_list_and_resubmit_from_the_cli(local_env: str) -> None:
    queue_jobs(local_env, waters(6), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    queue_jobs(local_env, waters(1, seed=9), level="bad", engine="tblite", method="B3LYP")
    runner = CliRunner()
    result = runner.invoke(app, ["jobs", "run", "--workers", "2", "--engine", "tblite"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["jobs", "list", "--state", "failed"])
    assert listed.exit_code == 0 and "InvalidInput" in listed.output
    assert "succeeded" not in listed.output
    everything = runner.invoke(app, ["jobs", "list", "--state", "succeeded"])
    assert everything.output.count("GFN2-xTB") == 6
    again = runner.invoke(
        app, ["jobs", "resubmit", "--state", "failed", "--error-class", "InvalidInput"]
    )
    assert again.exit_code == 0 and "resubmitted 1 job" in again.output
    refused = runner.invoke(app, ["jobs", "resubmit", "1"])
    assert refused.exit_code == 2 and "labels are never overwritten" in refused.output
    bad = runner.invoke(app, ["jobs", "resubmit", "7", "--set", "novalue"])
    assert bad.exit_code == 2 and "key=value" in bad.output


def test_jobs_create_queues_what_each_level_treats(local_env: str) -> None:
    import numpy as np
    from sqlalchemy import func, select

    from interphase.db.api import store_structures
    from interphase.db.models import LabelingJob, LevelOfTheory
    from interphase.db.session import transaction
    from interphase.records import StructureRecord

    cell = StructureRecord(
        numbers=np.array([3, 3]),
        positions_angstrom=np.array([[0.0, 0.0, 0.0], [1.72, 1.72, 1.72]]),
        cell_angstrom=np.eye(3) * 3.44,
        pbc=(True, True, True),
    )
    with transaction(local_env) as session:
        molecule_ids = store_structures(session, waters(3), generator="test").ids
        cell_ids = store_structures(session, [cell], generator="bulk").ids

    def jobs_at(level: str) -> list[int]:
        with transaction(local_env) as session:
            query = (
                select(LabelingJob.structure_id)
                .join(LevelOfTheory)
                .where(LevelOfTheory.name == level)
                .order_by(LabelingJob.structure_id)
            )
            return list(session.scalars(query))

    def count() -> int:
        with transaction(local_env) as session:
            return int(session.scalar(select(func.count()).select_from(LabelingJob)) or 0)

    runner = CliRunner()
    for arguments, message in [
        (["jobs", "create", "--level", "B3LYP"], "default levels: GFN2-xTB"),
        (["jobs", "create", "--level", "GFN2-xTB", "999"], "no structures with ids [999]"),
        (["jobs", "create", "--level", "GFN2-xTB", "--campaign", "x"], "no campaign 'x'"),
    ]:
        refused = runner.invoke(app, arguments)
        assert refused.exit_code == 2 and message in refused.output, refused.output
    assert count() == 0  # refusals change nothing

    periodic = runner.invoke(app, ["jobs", "create", "--level", "PBE-D3"])
    assert periodic.exit_code == 0, periodic.output
    assert jobs_at("PBE-D3") == cell_ids and "skipped 3 molecules" in periodic.output
    hybrid = runner.invoke(app, ["jobs", "create", "--level", "wB97X-D3BJ_def2-TZVPD"])
    assert jobs_at("wB97X-D3BJ_def2-TZVPD") == molecule_ids  # pyscf: molecules only
    assert "skipped 1 periodic cells" in hybrid.output
    picked = runner.invoke(app, ["jobs", "create", "--level", "GFN2-xTB", str(molecule_ids[1])])
    assert picked.exit_code == 0 and jobs_at("GFN2-xTB") == molecule_ids[1:2]
    rest = runner.invoke(app, ["jobs", "create", "--level", "GFN2-xTB", "--generator", "test"])
    assert "queued 2 job(s)" in rest.output and jobs_at("GFN2-xTB") == molecule_ids
    again = runner.invoke(app, ["jobs", "create", "--level", "GFN2-xTB", "--generator", "test"])
    assert again.exit_code == 0 and "nothing to queue" in again.output
    assert count() == 1 + 3 + 3
