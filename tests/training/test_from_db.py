"""Training from the database: exact snapshots, recorded epochs, resume, synthetic labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from interphase.db.models import (
    Label,
    ModelArtifact,
    Structure,
    SyntheticLabel,
    TrainingEpochMetric,
    TrainingRun,
)
from interphase.db.session import transaction
from interphase.training.from_db import TrainingRunError, train_from_database
from interphase.training.settings import DataSettings, TrainingSettings
from interphase.training.snapshot import load_snapshot
from interphase.training.trainer import EpochReport, TrainingCallbacks
from tests.training.labeled import MOLECULAR_LEVEL, SHARED_LEVEL, store_mixed_dataset
from tests.within import within

SMALL = {
    "batch_size": 4,
    "validation_fraction": 0.2,
    "model": {"hidden_sizes": [8], "charge_hidden_sizes": [8]},
}


@pytest.fixture
def mixed_db(db_url: str) -> str:
    store_mixed_dataset(db_url)
    return db_url


def test_snapshot_targets_and_label_ids(mixed_db: str) -> None:
    snapshot = within(mixed_db, load_snapshot)
    assert snapshot.heads == [SHARED_LEVEL, MOLECULAR_LEVEL]
    with transaction(mixed_db) as session:
        all_ids = sorted(session.scalars(select(Label.id)))
    np.testing.assert_array_equal(np.sort(snapshot.label_ids), all_ids)
    periodic = [ex for ex in snapshot.examples if any(ex.pbc)]
    molecular = [ex for ex in snapshot.examples if not any(ex.pbc)]
    assert len(periodic) == 3 and len(molecular) == 8
    assert all(
        ex.charges_e is None and set(ex.energies_hartree) == {SHARED_LEVEL} for ex in periodic
    )
    for ex in molecular:
        assert ex.charges_e is not None and abs(ex.charges_e.sum()) < 1e-6  # GFN2-xTB, neutral
        assert set(ex.gradients_hartree_per_angstrom) == {SHARED_LEVEL, MOLECULAR_LEVEL}
    # One head only: the GFN2-xTB labels then serve only their charges.
    only = within(mixed_db, load_snapshot, DataSettings(heads=[SHARED_LEVEL]))
    assert only.heads == [SHARED_LEVEL] and len(only.label_ids) == len(all_ids)
    assert all(set(ex.energies_hartree) == {SHARED_LEVEL} for ex in only.examples)


def test_run_records_snapshot_epochs_artifact_and_parity(mixed_db: str, tmp_path: Path) -> None:
    settings = TrainingSettings.model_validate({**SMALL, "epochs": 2})
    run_id, result = train_from_database(mixed_db, settings, tmp_path)
    with transaction(mixed_db) as session:
        run = session.get_one(TrainingRun, run_id)
        assert run.status == "succeeded" and run.epochs_completed == 2 and run.best_epoch
        assert run.heads == [SHARED_LEVEL, MOLECULAR_LEVEL]
        assert len(run.label_ids) == session.scalar(select(func.count()).select_from(Label))
        assert len(run.synthetic_label_ids) == 0
        assert TrainingSettings.model_validate(run.config) == settings
        rows = session.scalars(
            select(TrainingEpochMetric).where(TrainingEpochMetric.training_run_id == run_id)
        ).all()
        # 2 epochs x 2 splits x (2 heads + 1 row for loss and charges)
        assert len(rows) == 12
        head_row = next(
            r for r in rows if r.epoch == 2 and r.split == "validation" and r.head == SHARED_LEVEL
        )
        assert head_row.n_energies > 0 and head_row.energy_mae_mev_per_atom is not None
        assert head_row.force_rmse_mev_per_angstrom is not None
        loss_row = next(r for r in rows if r.epoch == 1 and r.split == "train" and r.head is None)
        assert loss_row.loss is not None and loss_row.learning_rate == pytest.approx(1e-3)
        assert loss_row.n_charges > 0 and loss_row.charge_rmse_e is not None
        artifact = session.scalars(select(ModelArtifact)).one()
        assert artifact.heads == [SHARED_LEVEL, MOLECULAR_LEVEL] and artifact.elements == [1, 3, 8]
        parity = np.load(run.metrics["parity_path"])
        assert run.metrics["heads"][SHARED_LEVEL]["train"]["energy_mae_mev_per_atom"] > 0
    assert f"train/{SHARED_LEVEL}/energy_predicted_hartree" in parity.files
    assert parity["train/charges/predicted_e"].shape == parity["train/charges/reference_e"].shape
    assert len(result.history) == 2


def test_interrupted_run_resumes_as_the_same_run(mixed_db: str, tmp_path: Path) -> None:
    settings = TrainingSettings.model_validate({**SMALL, "epochs": 3})

    def interrupt(report: EpochReport) -> None:
        if report.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_from_database(
            mixed_db, settings, tmp_path, callbacks=TrainingCallbacks(on_epoch=interrupt)
        )
    with transaction(mixed_db) as session:
        run = session.scalars(select(TrainingRun)).one()
        assert run.status == "interrupted" and run.epochs_completed == 2
        run_id = run.id
    # New labels since then do not enter the resumed run's snapshot.
    store_mixed_dataset(mixed_db, n_molecular=10, n_periodic=3)
    resumed_id, result = train_from_database(
        mixed_db, TrainingSettings(device="cpu"), tmp_path, resume_run_id=run_id
    )
    assert resumed_id == run_id and [r["epoch"] for r in result.history] == [1, 2, 3]
    with transaction(mixed_db) as session:
        run = session.get_one(TrainingRun, run_id)
        assert run.status == "succeeded" and run.epochs_completed == 3
        epochs = session.scalars(
            select(TrainingEpochMetric.epoch).where(
                TrainingEpochMetric.head.is_(None), TrainingEpochMetric.split == "train"
            )
        ).all()
        assert sorted(epochs) == [1, 2, 3]
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 1
    with pytest.raises(TrainingRunError, match="already finished"):
        train_from_database(mixed_db, settings, tmp_path, resume_run_id=run_id)
    with pytest.raises(TrainingRunError, match="no training run 99"):
        train_from_database(mixed_db, settings, tmp_path, resume_run_id=99)


def test_energy_only_training_on_synthetic_gp_energies(mixed_db: str, tmp_path: Path) -> None:
    """GPR-ANN: GP-labelled displaced copies enter as energy-only targets, ids recorded."""
    from interphase.gpr.augment_db import augment_subsets
    from interphase.gpr.fit import fit_subset_gps
    from interphase.gpr.settings import GPFitSettings

    store_mixed_dataset(mixed_db, n_molecular=16, n_periodic=0)  # 4 of each molecule
    fits = fit_subset_gps(
        mixed_db,
        SHARED_LEVEL,
        subset_keys=["HLi|2|nnn"],
        settings=GPFitSettings(training_iterations=5),
    )
    assert len(fits) == 1
    within(mixed_db, augment_subsets, SHARED_LEVEL, copies=3, subset_keys=["HLi|2|nnn"])
    settings = TrainingSettings.model_validate(
        {**SMALL, "epochs": 1, "mode": "energy_only", "data": {"heads": [SHARED_LEVEL]}}
    )
    run_id, result = train_from_database(mixed_db, settings, tmp_path)
    with transaction(mixed_db) as session:
        synthetic_ids = sorted(session.scalars(select(SyntheticLabel.id)))
        run = session.get_one(TrainingRun, run_id)
        np.testing.assert_array_equal(np.sort(run.synthetic_label_ids), synthetic_ids)
        assert len(synthetic_ids) > 0
        n_structures = session.scalar(select(func.count()).select_from(Structure)) or 0
    seen = result.history[0]["train"]["heads"][SHARED_LEVEL]
    validation = result.history[0]["validation"]["heads"][SHARED_LEVEL]
    assert seen["n_synthetic"] + validation["n_synthetic"] == len(synthetic_ids)
    assert seen["n_forces"] == 0  # energy-only
    assert len(result.train_indices) + len(result.validation_indices) <= n_structures
