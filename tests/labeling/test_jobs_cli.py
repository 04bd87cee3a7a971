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

    from interphase.db.models import LabelingJob, LevelOfTheory
    from interphase.db.session import transaction
    from interphase.db.structures import store_structures
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


def test_migration_0004_upgrades_and_downgrades(db_url: str) -> None:
    from alembic import command

    from interphase.db.session import _alembic_config

    def indexes() -> set[str]:
        return {i["name"] or "" for i in inspect(make_engine(db_url)).get_indexes("labeling_job")}

    assert "uq_labeling_job_open_structure_level" in indexes()
    command.downgrade(_alembic_config(db_url), "0003")
    make_engine(db_url).dispose()
    assert "uq_labeling_job_open_structure_level" not in indexes()
    upgrade(db_url)
    make_engine(db_url).dispose()
    assert "uq_labeling_job_open_structure_level" in indexes()


def _states(url: str) -> list[str]:
    from sqlalchemy import select

    from interphase.db.models import LabelingJob
    from interphase.db.session import transaction

    with transaction(url) as session:
        return [
            s.value for s in session.scalars(select(LabelingJob.state).order_by(LabelingJob.id))
        ]


def test_cancel_then_resubmit_from_the_cli(local_env: str) -> None:
    from sqlalchemy import update

    from interphase.db.models import LabelingJob
    from interphase.db.session import transaction

    ids = queue_jobs(local_env, waters(4), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    runner = CliRunner()
    cancelled = runner.invoke(app, ["jobs", "cancel", str(ids[0]), str(ids[1])])
    assert (
        cancelled.exit_code == 0 and f"cancelled 2 job(s): {ids[0]}, {ids[1]}" in cancelled.output
    )
    assert runner.invoke(app, ["jobs", "run"]).exit_code == 0  # cancelled jobs are never claimed
    assert _states(local_env) == ["cancelled", "cancelled", "succeeded", "succeeded"]

    refused = runner.invoke(app, ["jobs", "cancel", str(ids[2])])
    assert refused.exit_code == 2 and "succeeded: its label exists" in refused.output
    with transaction(local_env) as session:
        session.execute(update(LabelingJob).where(LabelingJob.id == ids[3]).values(state="running"))
    running = runner.invoke(app, ["jobs", "cancel", str(ids[3])])
    assert running.exit_code == 2 and "is running" in running.output
    nothing = runner.invoke(app, ["jobs", "cancel", "--level", "GFN2-xTB"])
    assert nothing.exit_code == 2 and "no pending or failed job matches" in nothing.output
    assert _states(local_env) == ["cancelled", "cancelled", "succeeded", "running"]  # unchanged

    back = runner.invoke(app, ["jobs", "resubmit", "--state", "cancelled", "--set", "accuracy=0.5"])
    assert back.exit_code == 0 and f"resubmitted 2 job(s): {ids[0]}, {ids[1]}" in back.output
    filtered = runner.invoke(app, ["jobs", "cancel", "--level", "GFN2-xTB"])
    assert filtered.exit_code == 0 and "cancelled 2 job(s)" in filtered.output
    assert "skipped 2 matching job(s)" in filtered.output  # the succeeded and the running one
    again = runner.invoke(app, ["jobs", "resubmit", str(ids[0])])
    assert again.exit_code == 0 and runner.invoke(app, ["jobs", "run"]).exit_code == 0
    assert _states(local_env)[0] == "succeeded"
    bare = runner.invoke(app, ["jobs", "cancel"])
    assert bare.exit_code == 2 and "give job ids or select with" in bare.output


def test_job_filter_by_message_and_iteration(db_url: str) -> None:
    from sqlalchemy import update

    from interphase.db.models import Campaign, Iteration, LabelingJob
    from interphase.db.session import transaction
    from interphase.labeling.jobs import JobFilter, count_matching

    ids = queue_jobs(db_url, waters(3), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    with transaction(db_url) as session:
        campaign = Campaign(name="c")
        session.add(campaign)
        session.flush()
        iteration = Iteration(campaign_id=campaign.id, index=0)
        session.add(iteration)
        session.flush()
        iteration_id = iteration.id
        messages = ["exceeded its time limit of 5 s", "100%_done", None]
        for job_id, message in zip(ids, messages, strict=True):
            session.execute(
                update(LabelingJob)
                .where(LabelingJob.id == job_id)
                .values(error_message=message, iteration_id=iteration_id if message else None)
            )
    with transaction(db_url) as session:
        assert count_matching(session, JobFilter(message="TIME LIMIT")) == 1
        assert count_matching(session, JobFilter(message="%_")) == 1  # literal, not a pattern
        assert count_matching(session, JobFilter(message="0%")) == 1
        assert count_matching(session, JobFilter(iteration_id=iteration_id)) == 2
        matched = session.scalars(JobFilter(iteration_id=iteration_id, message="limit").query())
        assert [job.id for job in matched] == ids[:1]


def test_jobs_create_with_an_unknown_generator_says_so(local_env: str) -> None:
    from interphase.db.session import transaction
    from interphase.db.structures import store_structures

    with transaction(local_env) as session:
        store_structures(session, waters(2), generator="lattice_noise")
    refused = CliRunner().invoke(
        app, ["jobs", "create", "--level", "GFN2-xTB", "--generator", "lattice"]
    )
    assert refused.exit_code == 2, refused.output
    assert (
        "no structures made by generator 'lattice'; generators in the database: lattice_noise"
        in refused.output
    )
    assert "has a label or job" not in refused.output
