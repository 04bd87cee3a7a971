"""Memory plan from a budget, and pure GPR-ANN augmentation (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from interphase.gpr.augment import augment_positions, displaced_copies
from interphase.gpr.errors import GPInputError, GPTooLargeError
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.memory import (
    CPU_HYPERPARAMETER_OUTPUTS,
    farthest_point_indices,
    kernel_gigabytes,
    plan_for_budget,
    plan_training_indices,
)
from tests.gpr.test_gp import NUMBERS, TRIMER_ANGSTROM, rattled_trimers


def test_budget_gives_output_caps_with_measured_factors() -> None:
    assert kernel_gigabytes(200, 46) == pytest.approx(6.18, abs=0.01)  # 27,800 outputs
    cpu = plan_for_budget(8.0)
    # 2.5 kernel copies to condition or to search hyperparameters (2.1 measured).
    assert 2.5 * 8 * cpu.max_outputs**2 == pytest.approx(8e9, rel=1e-3)
    assert cpu.max_hyperparameter_outputs == CPU_HYPERPARAMETER_OUTPUTS  # time cap on CPU
    gpu = plan_for_budget(68.0, on_gpu=True)
    assert gpu.max_hyperparameter_outputs > 27_800 and gpu.max_outputs > 27_800
    soap = plan_for_budget(8.0, features_per_structure=25_000)
    assert soap.max_outputs < cpu.max_outputs  # the Jacobians and J^T J count too
    with pytest.raises(ValueError, match="positive"):
        plan_for_budget(0.0)


def test_memory_plan_subsamples_by_farthest_point_or_refuses() -> None:
    inputs = np.concatenate([np.zeros((10, 3, 3)), np.ones((1, 3, 3))])
    # 11 structures x 10 outputs; cap 50 outputs = 5 structures.
    kept = plan_training_indices(inputs, 3, max_outputs=50)
    assert len(kept) == 5 and 10 in kept  # the outlier is always taken
    with pytest.raises(GPTooLargeError, match="subset Li3"):
        plan_training_indices(inputs, 3, max_outputs=50, policy="error", subset_key="Li3")
    points = np.array([[0.0], [0.1], [5.0], [10.0]])
    assert list(farthest_point_indices(points, 3)) == [0, 2, 3]


@pytest.fixture(scope="module")
def trimer_gp() -> EnergyGradientGP:
    positions, energies, gradients = rattled_trimers(15, seed=4)
    return EnergyGradientGP(NUMBERS, periodic=False, training_iterations=20, restarts=1).fit(
        positions, energies, gradients
    )


def test_displaced_copies_have_the_requested_width_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    copies = displaced_copies(TRIMER_ANGSTROM, 2000, 0.034, rng)
    assert copies.shape == (2000, 3, 3)
    assert (copies - TRIMER_ANGSTROM).std() == pytest.approx(0.034, rel=0.03)
    again = displaced_copies(TRIMER_ANGSTROM, 3, 0.034, np.random.default_rng(7))
    np.testing.assert_array_equal(
        again, displaced_copies(TRIMER_ANGSTROM, 3, 0.034, np.random.default_rng(7))
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"copies": 0}, "copies"),
        ({"delta_angstrom": 0.0}, "delta_angstrom"),
        ({"delta_angstrom": float("nan")}, "delta_angstrom"),
        ({"std_filter_hartree_per_atom": -1.0}, "std_filter"),
    ],
)
def test_bad_augmentation_arguments_are_refused(
    trimer_gp: EnergyGradientGP, kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(GPInputError, match=match):
        augment_positions(trimer_gp, TRIMER_ANGSTROM, **kwargs)  # type: ignore[arg-type]


def test_filter_keeps_small_displacements_and_drops_huge_ones(
    trimer_gp: EnergyGradientGP,
) -> None:
    small = augment_positions(trimer_gp, TRIMER_ANGSTROM, copies=10, delta_angstrom=0.02, seed=1)
    assert small.kept.all() and small.n_kept == 10  # no filter: all kept
    threshold = 3 * float(small.energy_std_hartree.max()) / 3  # 3x the largest, per atom
    filtered = augment_positions(
        trimer_gp,
        TRIMER_ANGSTROM,
        copies=10,
        delta_angstrom=0.02,
        std_filter_hartree_per_atom=threshold,
        seed=1,
    )
    # Same seed, same copies: the filter only changes which are kept.
    np.testing.assert_allclose(filtered.energy_hartree, small.energy_hartree, rtol=1e-12, atol=0)
    assert filtered.kept.all()
    huge = augment_positions(
        trimer_gp,
        TRIMER_ANGSTROM,
        copies=10,
        delta_angstrom=1.0,
        std_filter_hartree_per_atom=threshold,
        seed=1,
    )
    assert huge.n_kept <= 1  # far from every training structure: the GP does not know
    np.testing.assert_array_equal(huge.kept, huge.energy_std_hartree / 3 < threshold)
