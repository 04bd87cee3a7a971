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

from interphase.db.models import GPRModel, Label, LabelingJob, Structure, SyntheticLabel
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.gpr.augment_db import AugmentationError, augment_subsets
from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.errors import GPTooLargeError
from interphase.gpr.fit import (
    GPRModelNotFoundError,
    fit_subset_gps,
    load_gp,
    load_subsets,
)
from interphase.gpr.score import score_candidates, unlabeled_candidates
from interphase.gpr.settings import GPFitSettings
from interphase.labeling.uncertainty import queue_uncertainty_jobs
from interphase.records import LabelRecord, StructureRecord
from tests.gpr.same_prediction import assert_same_prediction
from tests.within import within

LEVEL = "LJ-test"
TRIMER = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.5, 2.6, 0.0]])
TETRAMER = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.5, 2.6, 0.0], [1.5, 0.9, 2.4]])
FAST = GPFitSettings(training_iterations=20, restarts=2)


def lj_record(
    positions: np.ndarray, labeled: bool = True, numbers: np.ndarray | None = None
) -> StructureRecord:
    numbers = np.full(len(positions), 3) if numbers is None else numbers
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = LennardJones(sigma=2.7, epsilon=0.1, rc=6.0, smooth=True)
    labels = {}
    if labeled:
        labels[LEVEL] = LabelRecord(
            level=LEVEL,
            total_energy_hartree=atoms.get_potential_energy() / Hartree,
            gradient_hartree_per_angstrom=-atoms.get_forces() / Hartree,
        )
    return StructureRecord(numbers=numbers, positions_angstrom=positions, labels=labels)


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


def count(url: str, model: type) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def two_subsets(db_url: str) -> str:
    store(db_url, rattled(TRIMER, 12, seed=1))
    store(db_url, rattled(TETRAMER, 8, seed=2))
    store(db_url, rattled(TETRAMER, 2, seed=3))  # joins the tetramer subset
    return db_url


def test_one_gp_per_subset_with_validation_errors(two_subsets: str) -> None:
    subsets = within(two_subsets, load_subsets, LEVEL)
    assert [len(s.label_ids) for s in subsets] == [12, 10]
    assert {s.subset_key for s in subsets} == {"Li3|3|nnn", "Li4|4|nnn"}
    fits = fit_subset_gps(two_subsets, LEVEL, settings=FAST)
    assert len(fits) == 2
    for fit in fits:
        # Energies spread by ~10 meV/atom here; a working GP is well under 1.
        assert fit.energy_mae_per_atom_hartree is not None
        assert fit.energy_mae_per_atom_hartree * Hartree * 1000 < 1.0
        assert fit.metrics["restart_losses"] and fit.metrics["memory_budget_gb"] > 0
    with transaction(two_subsets) as session:
        models = session.scalars(select(GPRModel).order_by(GPRModel.id)).all()
        assert [len(m.training_label_ids) for m in models] == [12, 10]
        assert models[0].descriptor["kind"] == "cartesian"
        assert models[0].descriptor["fit_settings"]["training_iterations"] == 20
        assert "lengthscale_angstrom" in models[0].hyperparameters


def test_atom_order_does_not_split_a_subset(db_url: str) -> None:
    numbers = np.array([3, 11, 3])
    shuffled = np.array([1, 0, 2])  # the same molecule with Na listed first
    records = [lj_record(p, numbers=numbers) for p in rattled(TRIMER, 3, seed=5)]
    records += [
        lj_record(p[shuffled], numbers=numbers[shuffled]) for p in rattled(TRIMER, 3, seed=6)
    ]
    with transaction(db_url) as session:
        store_structures(session, records, generator="test")
    (subset,) = within(db_url, load_subsets, LEVEL)
    assert subset.subset_key == "Li2Na|3|nnn" and len(subset.label_ids) == 6
    np.testing.assert_array_equal(subset.numbers, [3, 3, 11])
    for positions, gradient in zip(
        subset.positions_angstrom, subset.gradients_hartree_per_angstrom, strict=True
    ):
        relabeled = lj_record(positions, numbers=subset.numbers).labels[LEVEL]
        np.testing.assert_allclose(gradient, relabeled.gradient_hartree_per_angstrom, atol=1e-12)


def test_unknown_subset_is_a_clear_error(two_subsets: str) -> None:
    with pytest.raises(ValueError, match="no labels"):
        fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li9|9|nnn"], settings=FAST)


@pytest.mark.parametrize("kind", ["cartesian", "soap"])
def test_stored_gp_reproduces_predictions_exactly(two_subsets: str, kind: str) -> None:
    settings = FAST.model_copy(update={"descriptor": DescriptorSettings(kind=kind, n_max=3)})
    fits = fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=settings)
    probe = np.stack(rattled(TRIMER, 3, seed=9))
    first = within(two_subsets, load_gp, fits[0].gpr_model_id).predict(probe)
    again = within(two_subsets, load_gp, fits[0].gpr_model_id).predict(probe)
    assert_same_prediction(first, again)
    rotation = Rotation.from_euler("xyz", [40, -20, 75], degrees=True).as_matrix()
    turned = within(two_subsets, load_gp, fits[0].gpr_model_id).predict(probe @ rotation.T + 5.0)
    np.testing.assert_allclose(turned.energy_hartree, first.energy_hartree, atol=1e-10)
    np.testing.assert_allclose(turned.energy_std_hartree, first.energy_std_hartree, atol=1e-10)
    with transaction(two_subsets) as session:
        descriptor = session.get_one(GPRModel, fits[0].gpr_model_id).descriptor
    assert descriptor["kind"] == kind and (kind == "cartesian" or descriptor["n_max"] == 3)
    with pytest.raises(GPRModelNotFoundError):
        within(two_subsets, load_gp, 999)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # about processes, not the DB
def test_parallel_fit_matches_serial(two_subsets: str) -> None:
    serial = fit_subset_gps(two_subsets, LEVEL, settings=FAST)
    parallel = fit_subset_gps(two_subsets, LEVEL, settings=FAST, workers=2)
    for a, b in zip(serial, parallel, strict=True):
        assert a.subset_key == b.subset_key
        assert a.hyperparameters["lengthscale_angstrom"] == pytest.approx(
            b.hyperparameters["lengthscale_angstrom"], rel=1e-6
        )


def test_oversized_subset_is_subsampled_or_refused_leaving_the_db_unchanged(
    two_subsets: str,
) -> None:
    settings = FAST.model_copy(update={"max_outputs": 6 * 10})
    fits = fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=settings)
    assert fits[0].n_structures == 6 and fits[0].n_available == 12 and fits[0].subsampled
    with transaction(two_subsets) as session:
        metrics = session.scalars(select(GPRModel.metrics)).one()
        assert metrics["subsampled"] is True and metrics["oversize_policy"] == "subsample"
    # 60 outputs hold 6 trimers but only 4 tetramers (13 outputs each): with the
    # 'error' policy the tetramer subset fails, and the trimer GP fitted before it
    # is not stored either.
    refuse = settings.model_copy(update={"oversize": "error", "max_outputs": 125})
    with pytest.raises(GPTooLargeError, match="Li4"):
        fit_subset_gps(two_subsets, LEVEL, settings=refuse)
    assert count(two_subsets, GPRModel) == 1


def test_selection_thresholds_caps_and_spreads(two_subsets: str) -> None:
    fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=FAST)
    near = rattled(TRIMER, 1, seed=20, amplitude=0.01)
    far = rattled(TRIMER * 1.3, 1, seed=21)
    twins = [far[0] + 1e-4, far[0] + 2e-4]  # near-identical to `far`
    other = rattled(TRIMER * 0.8, 1, seed=22)
    no_gp = rattled(np.vstack([TETRAMER, [[4.0, 4.0, 4.0]]]), 1, seed=23)  # Li5: no GP
    ids = store(two_subsets, near + far + twins + other + no_gp, labeled=False)
    assert within(two_subsets, unlabeled_candidates, LEVEL) == ids
    scores = within(two_subsets, score_candidates, ids, LEVEL)
    std = scores.std_per_atom_hartree
    assert np.isinf(std[-1]) and scores.gpr_model_ids[-1] is None
    assert std[1] > 10 * std[0]
    threshold = 3 * std[0]
    capped = within(
        two_subsets,
        queue_uncertainty_jobs,
        scores,
        LEVEL,
        threshold_per_atom_hartree=threshold,
        max_count=1,
    )
    assert len(capped) == 1
    within(
        two_subsets,
        queue_uncertainty_jobs,
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
    assert detail["predicted_std_per_atom_mev"] == pytest.approx(
        detail["predicted_std_per_atom_hartree"] * Hartree * 1000
    )
    assert within(two_subsets, unlabeled_candidates, LEVEL) == [
        i for i in ids if i not in picked_ids
    ]


def test_augmentation_stores_filtered_synthetic_labels_once(two_subsets: str) -> None:
    with pytest.raises(AugmentationError, match="gpr fit"):
        within(two_subsets, augment_subsets, LEVEL)
    fits = fit_subset_gps(two_subsets, LEVEL, subset_keys=["Li3|3|nnn"], settings=FAST)
    with pytest.raises(AugmentationError, match="delta"):
        within(two_subsets, augment_subsets, LEVEL, delta_angstrom=-0.1)
    results = within(two_subsets, augment_subsets, LEVEL, copies=4, delta_angstrom=0.02)
    assert results[0].n_references == 12 and results[0].n_kept == 48
    assert results[0].n_new_labels == 48
    again = within(two_subsets, augment_subsets, LEVEL, copies=4, delta_angstrom=0.02)
    assert again[0].n_new_labels == 0
    assert count(two_subsets, Structure) == 22 + 48  # same copies: no new structures
    # A huge displacement leaves the data behind: the std filter drops the copies.
    filtered = within(
        two_subsets,
        augment_subsets,
        LEVEL,
        copies=4,
        delta_angstrom=1.0,
        std_filter_hartree_per_atom=1e-4,
        seed=5,
    )
    assert filtered[0].n_kept < filtered[0].n_copies / 2
    with transaction(two_subsets) as session:
        copy = session.scalars(
            select(Structure)
            .where(Structure.generator == "gpr-augment")
            .order_by(Structure.id)
            .limit(1)
        ).one()
        parent = session.get_one(Structure, copy.parent_id)
        assert np.abs(copy.positions_angstrom - parent.positions_angstrom).max() < 0.2
        params = copy.generator_params
        assert params["gpr_model_id"] == fits[0].gpr_model_id
        assert params["delta_angstrom"] == 0.02 and params["copy_index"] == 0
        assert copy.seed is not None
        synthetic = session.scalars(
            select(SyntheticLabel).where(SyntheticLabel.structure_id == copy.id)
        ).one()
        assert synthetic.gpr_model_id == fits[0].gpr_model_id
        assert synthetic.energy_std_hartree > 0
    assert count(two_subsets, SyntheticLabel) == 48 + filtered[0].n_kept
    assert count(two_subsets, Label) == 22  # reference labels untouched
