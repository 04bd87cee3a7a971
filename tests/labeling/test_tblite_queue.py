"""GFN2-xTB through tblite, alone and through the job queue."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from interphase.db.levels import get_or_create_level
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.labeling.engines import UnknownEngineError, get_engine
from interphase.labeling.engines.contract import Calculation, InvalidInput
from interphase.labeling.queue.enqueue import create_jobs
from interphase.labeling.queue.run import run_pending_jobs
from interphase.records import StructureRecord

WATER = StructureRecord(
    numbers=np.array([8, 1, 1]),
    positions_angstrom=np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]]),
)


def energy(positions: np.ndarray) -> float:
    record = StructureRecord(numbers=WATER.numbers, positions_angstrom=positions)
    value = get_engine("tblite").compute(record, Calculation("GFN2-xTB")).total_energy_hartree
    assert value is not None
    return value


def test_gradient_matches_finite_differences_in_hartree_per_angstrom() -> None:
    label = get_engine("tblite").compute(WATER, Calculation("GFN2-xTB"))
    assert label.gradient_hartree_per_angstrom is not None
    h = 1e-4
    for atom, axis in [(0, 2), (1, 1), (2, 2)]:
        plus, minus = WATER.positions_angstrom.copy(), WATER.positions_angstrom.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = (energy(plus) - energy(minus)) / (2 * h)
        assert label.gradient_hartree_per_angstrom[atom, axis] == pytest.approx(numeric, abs=1e-6)
    assert np.abs(label.gradient_hartree_per_angstrom.sum(axis=0)).max() < 1e-8


def test_charges_and_dipole() -> None:
    label = get_engine("tblite").compute(WATER, Calculation("GFN2-xTB"))
    assert label.charges_e is not None and label.dipole_e_angstrom is not None
    assert label.charges_e.sum() == pytest.approx(0.0, abs=1e-8)
    assert label.charges_e[0] < -0.4  # oxygen carries the negative charge
    # Dipole points from O towards the H atoms (+z here), about 0.47 e·Å (2.3 D).
    assert label.dipole_e_angstrom[2] == pytest.approx(0.4726, abs=2e-3)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no method"):
        get_engine("tblite").compute(WATER, Calculation("B3LYP"))
    with pytest.raises(UnknownEngineError, match="unknown engine"):
        get_engine("nwchem")


def test_queue_labels_jobs_and_records_failures(db_url: str) -> None:
    moved = WATER.positions_angstrom + 5.0
    with transaction(db_url) as session:
        ids = store_structures(
            session,
            [WATER, StructureRecord(numbers=WATER.numbers, positions_angstrom=moved)],
            generator="test",
        ).ids
        good = get_or_create_level(session, "GFN2-xTB")
        bad = get_or_create_level(session, "nonsense-level")
        bad.engine, bad.method = "tblite", "not-a-method"
        create_jobs(session, ids, good)
        create_jobs(session, ids[:1], bad)
    report = run_pending_jobs(db_url)
    assert (report.succeeded, report.failed) == (2, 1)
    with transaction(db_url) as session:
        jobs = session.scalars(select(LabelingJob).order_by(LabelingJob.id)).all()
        assert [j.state for j in jobs] == [JobState.succeeded, JobState.succeeded, JobState.failed]
        assert jobs[2].error_class == "InvalidInput"
        attempt = session.scalars(select(JobAttempt).where(JobAttempt.job_id == jobs[2].id)).one()
        assert attempt.error_class == "InvalidInput" and attempt.finished_at is not None
        labels = session.scalars(select(Label).order_by(Label.id)).all()
        assert len(labels) == 2
        assert labels[0].job_id == jobs[0].id
        assert labels[0].provenance["engine"] == "tblite"
        assert labels[0].provenance["engine_version"] == "0.8.0"
        assert labels[0].charges_e is not None and labels[0].charges_e.shape == (3,)
