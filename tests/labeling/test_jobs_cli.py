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
    assert refused.exit_code == 2 and "only failed or cancelled" in refused.output
    bad = runner.invoke(app, ["jobs", "resubmit", "7", "--set", "novalue"])
    assert bad.exit_code == 2 and "key=value" in bad.output
