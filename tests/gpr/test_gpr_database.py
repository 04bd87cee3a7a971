"""Subset GPs from the database: grouping, memory plan, persistence, selection, augmentation.

Labels come from an analytic Lennard-Jones PES (ASE), so errors have a known truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.units import Hartree
from scipy.spatial.transform import Rotation
from sqlalchemy import func, select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.api import store_structures
from interphase.db.models import GPRModel, Label, LabelingJob, Structure, SyntheticLabel
from interphase.db.session import transaction
from interphase.gpr.augment_db import AugmentationError, augment_subsets
from interphase.gpr.fit import (
    GPFitSettings,
    GPRModelNotFoundError,
    fit_subset_gps,
    load_gp,
    load_subsets,
)
from interphase.gpr.gp import GPTooLargeError
from interphase.gpr.memory import farthest_point_indices, plan_training_indices
from interphase.gpr.score import queue_uncertain, score_candidates, unlabeled_candidates
from interphase.records import LabelRecord, StructureRecord

LEVEL = "LJ-test"
TRIMER = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.5, 2.6, 0.0]])
TETRAMER = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.5, 2.6, 0.0], [1.5, 0.9, 2.4]])
FAST = GPFitSettings(training_iterations=20)


def lj_record(positions: np.ndarray, labeled: bool = True) -> StructureRecord:
    atoms = Atoms(numbers=[3] * len(positions), positions=positions)
    atoms.calc = LennardJones(sigma=2.7, epsilon=0.1, rc=6.0, smooth=True)
    labels = {}
    if labeled:
        labels[LEVEL] = LabelRecord(
            level=LEVEL,
            total_energy_hartree=atoms.get_potential_energy() / Hartree,
            gradient_hartree_per_angstrom=-atoms.get_forces() / Hartree,
        )
    return StructureRecord(
        numbers=np.full(len(positions), 3), positions_angstrom=positions, labels=labels
    )


def rattled(base: np.ndarray, n: int, seed: int, amplitude: float = 0.05) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [base + rng.normal(scale=amplitude, size=base.shape) for _ in range(n)]


def store(
    url: str, positions: list[np.ndarray], labeled: bool = True, generator: str = "test"
) -> list[int]:
    with transaction(url) as session:
        return store_structures(
            session, [lj_record(p, labeled) for p in positions], generator=generator
        ).ids


@pytest.fixture
def two_subsets(db_url: str) -> str:
    store(db_url, rattled(TRIMER, 12, seed=1))
    store(db_url, rattled(TETRAMER, 8, seed=2))
    store(db_url, rattled(TETRAMER, 2, seed=3))  # joins the tetramer subset
    return db_url


def test_one_gp_per_subset_with_validation_errors(two_subsets: str) -> None:
    subsets = load_subsets(two_subsets, LEVEL)
    assert [len(s.label_ids) for s in subsets] == [12, 10]
    assert {s.subset_key for s in subsets} == {"Li3|3|nnn", "Li4|4|nnn"}
    fits = fit_subset_gps(two_subsets, LEVEL, settings=FAST)
    assert len(fits) == 2
    for fit in fits:
        # Energies spread by ~10 meV/atom here; a working GP is well under 1.
        assert fit.energy_mae_per_atom_hartree is not None
        assert fit.energy_mae_per_atom_hartree * Hartree * 1000 < 1.0
    with transaction(two_subsets) as session:
        models = session.scalars(select(GPRModel).order_by(GPRModel.id)).all()
        assert [len(m.training_label_ids) for m in models] == [12, 10]
        assert models[0].descriptor["kind"] == "cartesian"


def test_unknown_subset_is_a_clear_error(two_subsets: str) -> None:
    with pytest.raises(ValueError, match="no labels"):
        fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li9|9|nnn"], settings=FAST)


def test_stored_gp_reproduces_predictions_and_rotation_is_ignored(two_subsets: str) -> None:
    fits = fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=FAST)
    probe = rattled(TRIMER, 1, seed=9)[0]
    first = load_gp(two_subsets, fits[0].gpr_model_id).predict(probe[None])
    again = load_gp(two_subsets, fits[0].gpr_model_id).predict(probe[None])
    assert first.energy_hartree[0] == again.energy_hartree[0]
    rotation = Rotation.from_euler("xyz", [40, -20, 75], degrees=True).as_matrix()
    moved = probe @ rotation.T + np.array([5.0, -2.0, 1.0])
    turned = load_gp(two_subsets, fits[0].gpr_model_id).predict(moved[None])
    assert turned.energy_hartree[0] == pytest.approx(first.energy_hartree[0], abs=1e-10)
    assert turned.energy_std_hartree[0] == pytest.approx(first.energy_std_hartree[0], abs=1e-10)
    with pytest.raises(GPRModelNotFoundError):
        load_gp(two_subsets, 999)


def test_parallel_fit_matches_serial(two_subsets: str) -> None:
    serial = fit_subset_gps(two_subsets, LEVEL, settings=FAST)
    parallel = fit_subset_gps(two_subsets, LEVEL, settings=FAST, workers=2)
    for a, b in zip(serial, parallel, strict=True):
        assert a.subset_key == b.subset_key
        assert a.hyperparameters["lengthscale_angstrom"] == pytest.approx(
            b.hyperparameters["lengthscale_angstrom"], rel=1e-6
        )


def test_memory_plan_subsamples_by_farthest_point_or_refuses() -> None:
    inputs = np.concatenate([np.zeros((10, 3, 3)), np.ones((1, 3, 3))])
    # 11 structures x 10 outputs; cap 50 outputs = 5 structures.
    kept = plan_training_indices(inputs, 3, max_outputs=50)
    assert len(kept) == 5 and 10 in kept  # the outlier is always taken
    with pytest.raises(GPTooLargeError, match="subset Li3"):
        plan_training_indices(inputs, 3, max_outputs=50, policy="error", subset_key="Li3")
    points = np.array([[0.0], [0.1], [5.0], [10.0]])
    assert list(farthest_point_indices(points, 3)) == [0, 2, 3]


def test_oversized_subset_is_subsampled_and_recorded(two_subsets: str) -> None:
    settings = GPFitSettings(training_iterations=10, max_outputs=6 * 10)
    fits = fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=settings)
    assert fits[0].n_structures == 6 and fits[0].n_available == 12 and fits[0].subsampled
    with transaction(two_subsets) as session:
        assert session.scalars(select(GPRModel.metrics)).one()["subsampled"] is True


def test_selection_thresholds_caps_and_spreads(two_subsets: str) -> None:
    fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=FAST)
    near = rattled(TRIMER, 1, seed=20, amplitude=0.01)
    far = rattled(TRIMER * 1.3, 1, seed=21)
    twins = [far[0] + 1e-4, far[0] + 2e-4]  # near-identical to `far`
    other = rattled(TRIMER * 0.8, 1, seed=22)
    no_gp = rattled(np.vstack([TETRAMER, [[4.0, 4.0, 4.0]]]), 1, seed=23)  # Li5: no GP
    ids = store(two_subsets, near + far + twins + other + no_gp, labeled=False)
    assert unlabeled_candidates(two_subsets, LEVEL) == ids
    scores = score_candidates(two_subsets, ids, LEVEL)
    std = scores.std_per_atom_hartree
    assert np.isinf(std[-1]) and scores.gpr_model_ids[-1] is None
    assert std[1] > 10 * std[0]
    threshold = 3 * std[0]
    capped = queue_uncertain(
        two_subsets, scores, LEVEL, threshold_per_atom_hartree=threshold, max_count=1
    )
    assert len(capped) == 1
    queue_uncertain(
        two_subsets,
        scores,
        LEVEL,
        threshold_per_atom_hartree=threshold,
        max_count=10,
        min_rmsd_angstrom=0.05,
    )
    with transaction(two_subsets) as session:
        picked = session.scalars(select(LabelingJob).order_by(LabelingJob.id)).all()
        picked_ids = [job.structure_id for job in picked]
        detail = picked[1].reason_detail
        assert {job.reason.value for job in picked} == {"uncertainty"}
    assert len(picked) == 3  # no-GP, one of the three near-twins, the compressed trimer
    assert picked_ids[0] == ids[-1]  # no GP: maximally uncertain, first
    assert ids[0] not in picked_ids  # under the threshold
    assert sum(i in picked_ids for i in ids[1:4]) == 1
    assert detail["gpr_model_id"] is not None and detail["threshold_per_atom_hartree"] == threshold
    assert unlabeled_candidates(two_subsets, LEVEL) == [i for i in ids if i not in picked_ids]


def test_augmentation_stores_filtered_synthetic_labels_once(two_subsets: str) -> None:
    with pytest.raises(AugmentationError, match="gpr fit"):
        augment_subsets(two_subsets, LEVEL)
    fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=FAST)
    results = augment_subsets(two_subsets, LEVEL, copies=4, delta_angstrom=0.02)
    assert results[0].n_references == 12 and results[0].n_kept == 48
    assert results[0].n_new_labels == 48
    again = augment_subsets(two_subsets, LEVEL, copies=4, delta_angstrom=0.02)
    assert again[0].n_new_labels == 0
    # A huge displacement leaves the data behind: the std filter drops the copies.
    filtered = augment_subsets(
        two_subsets, LEVEL, copies=4, delta_angstrom=1.0, std_filter_hartree_per_atom=1e-4, seed=5
    )
    assert filtered[0].n_kept < filtered[0].n_copies / 2
    with transaction(two_subsets) as session:
        n_synthetic = session.scalar(select(func.count(SyntheticLabel.id)))
        n_labels = session.scalar(select(func.count(Label.id)))
        copy = session.scalars(
            select(Structure).where(Structure.generator == "gpr-augment")
        ).first()
        assert copy is not None and copy.parent_id is not None
        parent = session.get(Structure, copy.parent_id)
        assert parent is not None
        assert np.abs(copy.positions_angstrom - parent.positions_angstrom).max() < 0.2
    assert n_synthetic == 48 + filtered[0].n_kept
    assert n_labels == 22  # reference labels untouched


def test_cli_fit_select_augment(local_env: str) -> None:
    store(local_env, rattled(TRIMER, 10, seed=1))
    store(local_env, rattled(TRIMER * 1.2, 3, seed=4), labeled=False)
    runner = CliRunner()
    fit = runner.invoke(app, ["gpr", "fit", "--level", LEVEL, "--iterations", "15"])
    assert fit.exit_code == 0, fit.output
    assert "Li3|3|nnn" in fit.output.replace("\n", "").replace("│", "").replace(" ", "")
    select_ = runner.invoke(app, ["gpr", "select", "--level", LEVEL, "--threshold", "0.1"])
    assert select_.exit_code == 0, select_.output
    augment = runner.invoke(app, ["gpr", "augment", "--level", LEVEL, "--copies", "2"])
    assert augment.exit_code == 0, augment.output
    with transaction(local_env) as session:
        assert session.scalar(select(func.count(LabelingJob.id))) == 3
        assert session.scalar(select(func.count(SyntheticLabel.id))) == 20
    bad = runner.invoke(app, ["gpr", "fit", "--level", LEVEL, "--oversize", "crash"])
    assert bad.exit_code == 2 and "subsample" in bad.output
