"""One open job per structure and level, and a label that is already there (issue 12, item 2).

Reproduced: three concurrent ``jobs create`` made three jobs per structure and
crashed on the new level's unique name; a duplicate job, or a label imported
for a structure with a pending job, crashed every worker that claimed it.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from interphase.db.levels import get_or_create_level
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob, LevelOfTheory
from interphase.db.session import _alembic_config, make_engine, transaction, upgrade
from interphase.db.structures import store_structures
from interphase.labeling.queue.run import run_pending_jobs
from interphase.records import LabelRecord, StructureRecord
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    ROOT,
    job_and_attempts,
    job_state,
    queue_jobs,
    start_worker,
    wait_for,
    waters,
    worker_env,
)

#: ``jobs create`` once the gate file is gone, so that the processes really race.
CREATE_AT_THE_GATE = """
import sys, time
from pathlib import Path
from interphase.cli import app
gate = Path(sys.argv[1])
while gate.exists():
    time.sleep(0.005)
sys.argv = ["interphase", "jobs", "create", "--level", "GFN2-xTB"]
app()
"""


def _count(url: str, model: type) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_the_database_refuses_a_second_open_job(db_url: str) -> None:
    with transaction(db_url) as session:
        (structure_id,) = store_structures(session, waters(1), generator="test").ids
        level_id = get_or_create_level(session, "GFN2-xTB").id
        session.add(LabelingJob(structure_id=structure_id, level_id=level_id))
    with pytest.raises(IntegrityError), transaction(db_url) as session:
        session.add(LabelingJob(structure_id=structure_id, level_id=level_id))
    with transaction(db_url) as session:  # once the first is closed, a new one may open
        session.execute(text("UPDATE labeling_job SET state = 'failed'"))
        session.add(LabelingJob(structure_id=structure_id, level_id=level_id))
    assert _count(db_url, LabelingJob) == 2


@pytest.mark.slow
def test_three_concurrent_creates_make_one_job_per_structure_and_one_level(
    db_url: str, tmp_path: Path
) -> None:
    with transaction(db_url) as session:
        store_structures(session, waters(300), generator="test")
    gate = tmp_path / "gate"
    gate.touch()
    env = worker_env(db_url, INTERPHASE_DATA_DIR=str(tmp_path / "data"))
    creators = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_AT_THE_GATE, str(gate)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    gate.unlink()
    outputs = [creator.communicate(timeout=300) for creator in creators]
    assert [c.returncode for c in creators] == [0, 0, 0], outputs
    assert all("Traceback" not in err for _, err in outputs)
    with transaction(db_url) as session:
        per_structure = Counter(session.scalars(select(LabelingJob.structure_id)))
        levels = session.scalars(select(LevelOfTheory.name)).all()
    assert len(per_structure) == 300 and set(per_structure.values()) == {1}
    assert levels == ["GFN2-xTB"]  # the level was created once, race or not
    queued = sum(int(out.split("queued ")[1].split()[0]) for out, _ in outputs if "queued" in out)
    assert queued == 300  # each job reported by exactly one of the three


def _label_for(record: StructureRecord) -> StructureRecord:
    labeled = StructureRecord(
        numbers=record.numbers, positions_angstrom=record.positions_angstrom, key="imported"
    )
    labeled.labels["GFN2-xTB"] = LabelRecord(
        level="GFN2-xTB",
        total_energy_hartree=-5.07,
        gradient_hartree_per_angstrom=np.zeros((3, 3)),
        provenance={"source": "import"},
    )
    return labeled


def test_a_label_imported_for_a_pending_job_is_not_computed_again(db_url: str) -> None:
    records = waters(2)
    ids = queue_jobs(db_url, records, level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    with transaction(db_url) as session:  # what `data import` does with a labeled entry
        store_structures(session, [_label_for(records[0])], generator="import")
    report = run_pending_jobs(db_url)
    assert (report.succeeded, report.already_labeled, report.failed) == (1, 1, 0)
    job, attempts = job_and_attempts(db_url, ids[0])
    assert job.state == JobState.succeeded and attempts[0].state == JobState.succeeded
    with transaction(db_url) as session:
        imported = session.scalars(select(Label).where(Label.job_id.is_(None))).one()
    assert attempts[0].error_message == (
        f"label already present (label {imported.id}); nothing stored"
    )
    assert imported.provenance["source"] == "import"  # the imported label stays
    assert _count(db_url, Label) == 2


@pytest.mark.slow
def test_a_label_stored_while_the_job_runs_is_kept_and_the_worker_goes_on(
    db_url: str, tmp_path: Path
) -> None:
    fake_engines.register()
    hold = tmp_path / "hold"
    hold.touch()
    records = waters(2, seed=3)
    held, after = (
        queue_jobs(
            db_url,
            [record],
            level="GFN2-xTB",
            engine="holding",
            method="GFN2-xTB",
            settings={"hold_file": str(hold)},
        )[0]
        for record in records
    )
    worker = start_worker(db_url)
    wait_for(lambda: job_state(db_url, held) == JobState.running, "the held job to run")
    with transaction(db_url) as session:  # an import lands while the label is computed
        store_structures(session, [_label_for(records[0])], generator="import")
    hold.unlink()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert out.splitlines()[-1].split() == ["1", "1", "0"]  # succeeded, already labeled, failed
    _, attempts = job_and_attempts(db_url, held)
    assert attempts[0].state == JobState.succeeded
    assert "label already present" in (attempts[0].error_message or "")
    assert job_state(db_url, after) == JobState.succeeded
    with transaction(db_url) as session:
        by_structure = Counter(session.scalars(select(Label.structure_id)))
    assert set(by_structure.values()) == {1} and len(by_structure) == 2


def test_migration_0004_cancels_duplicate_open_jobs_first(db_url: str) -> None:
    with transaction(db_url) as session:
        structure_ids = store_structures(session, waters(2), generator="test").ids
        level_id = get_or_create_level(session, "GFN2-xTB").id
    command.downgrade(_alembic_config(db_url), "0003")
    make_engine(db_url).dispose()
    rows = [(structure_ids[0], "pending"), (structure_ids[0], "running")]
    rows += [(structure_ids[0], "pending"), (structure_ids[1], "pending")]
    rows += [(structure_ids[1], "pending"), (structure_ids[1], "failed")]
    with make_engine(db_url).begin() as connection:
        for structure_id, state in rows:
            connection.execute(
                text(
                    "INSERT INTO labeling_job (structure_id, level_id, state, reason, "
                    "reason_detail, attempt, settings, created_at, updated_at) VALUES "
                    "(:s, :l, :state, 'initial', '{}', 0, '{}', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"s": structure_id, "l": level_id, "state": state},
            )
    upgrade(db_url)
    make_engine(db_url).dispose()
    with transaction(db_url) as session:
        jobs = session.scalars(select(LabelingJob).order_by(LabelingJob.id)).all()
        states = [job.state.value for job in jobs]
        messages = [job.error_message for job in jobs]
    assert states == ["cancelled", "running", "cancelled", "pending", "cancelled", "failed"]
    assert messages[0] == f"cancelled by migration 0004: duplicate of job {jobs[1].id}"
    assert messages[4] == f"cancelled by migration 0004: duplicate of job {jobs[3].id}"
    assert _count(db_url, JobAttempt) == 0
