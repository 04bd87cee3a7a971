"""MultiHeadPotential (eq. 1): forces, invariances, periodic images, charges, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from scipy.spatial.transform import Rotation

from interphase.models.descriptors import UnknownElementError, collate
from interphase.models.multihead import (
    MultiHeadPotential,
    UnknownHeadError,
    energy_and_gradient,
    evaluate_structure,
)

NUMBERS = np.array([3, 3, 1, 3, 8, 1])
MOLECULAR = (False, False, False)
PERIODIC = (True, True, True)
CELL = np.array([[3.9, 0.0, 0.0], [0.4, 3.7, 0.0], [0.2, -0.3, 4.1]])


@pytest.fixture(scope="module")
def model() -> MultiHeadPotential:
    """Every term of eq. 1 switched on (charges, G^qR, Coulomb, D3 dispersion)."""
    torch.manual_seed(0)
    potential = MultiHeadPotential(
        [1, 3, 8],
        ["pure", "hybrid"],
        hidden_sizes=(16, 16),
        charge_hidden_sizes=(8,),
        dispersion_functional="wb97x",
    )
    # Non-trivial self-energies and scales, as after fitting.
    potential.set_energy_reference(
        np.array([[-0.5, -7.4, -75.0], [-0.6, -7.5, -75.1]]), np.array([0.01, 0.02])
    )
    return potential.eval()


@pytest.fixture(scope="module")
def positions() -> np.ndarray:
    rng = np.random.default_rng(3)
    grid = np.array(
        [[0, 0, 0], [2.4, 0, 0], [0, 2.3, 0], [0.2, 0.1, 2.5], [2.3, 2.2, 1.4], [1.2, 3.0, 2.6]]
    )
    return grid + rng.normal(scale=0.15, size=grid.shape)


def evaluate(model: MultiHeadPotential, positions: np.ndarray, cell, pbc, head="pure", **kw):  # type: ignore[no-untyped-def]
    result = evaluate_structure(model, NUMBERS, positions, cell, pbc, head, **kw)
    return result.energy_hartree, result.gradient_hartree_per_angstrom


@pytest.mark.parametrize(
    ("cell", "pbc"), [(None, MOLECULAR), (CELL, PERIODIC), (CELL, (True, True, False))]
)
def test_forces_are_minus_the_energy_gradient(
    model: MultiHeadPotential, positions: np.ndarray, cell: np.ndarray | None, pbc: tuple
) -> None:
    _, gradient = evaluate(model, positions, cell, pbc, total_charge=1.0)
    step, checked = 1e-5, [0, 2, 4]  # a Li, an H, the O
    finite_difference = np.zeros((len(checked), 3))
    for row, atom in enumerate(checked):
        for axis in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[atom, axis] += step
            minus[atom, axis] -= step
            e_plus = evaluate(model, plus, cell, pbc, total_charge=1.0)[0]
            e_minus = evaluate(model, minus, cell, pbc, total_charge=1.0)[0]
            finite_difference[row, axis] = (e_plus - e_minus) / (2 * step)
    assert np.abs(gradient).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(gradient[checked], finite_difference, atol=1e-7, rtol=1e-6)


def test_rotation_and_translation_invariance(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    rotation = Rotation.from_euler("zyx", [0.4, 1.2, -2.0]).as_matrix()
    shift = np.array([1.0, -7.0, 3.0])
    energy, gradient = evaluate(model, positions, None, MOLECULAR, "hybrid")
    moved = evaluate(model, positions @ rotation.T + shift, None, MOLECULAR, "hybrid")
    assert moved[0] == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(moved[1], gradient @ rotation.T, atol=1e-10)
    # A periodic cell rotated together with its atoms.
    energy, gradient = evaluate(model, positions, CELL, PERIODIC)
    moved = evaluate(model, positions @ rotation.T + shift, CELL @ rotation.T, PERIODIC)
    assert moved[0] == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(moved[1], gradient @ rotation.T, atol=1e-10)


def test_permutation_of_same_element_atoms(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    permutation = np.array([3, 0, 5, 1, 4, 2])
    assert np.array_equal(NUMBERS[permutation], NUMBERS)
    energy, gradient = evaluate(model, positions, CELL, PERIODIC)
    energy_p, gradient_p = evaluate(model, positions[permutation], CELL, PERIODIC)
    assert energy_p == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(gradient_p, gradient[permutation], atol=1e-10)


def test_periodic_image_choice_does_not_matter(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    energy, gradient = evaluate(model, positions, CELL, PERIODIC)
    wrapped = positions.copy()
    wrapped[1] += CELL[0] - 2 * CELL[2]
    wrapped[4] -= CELL[1]
    assert evaluate(model, wrapped, CELL, PERIODIC)[0] == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(evaluate(model, wrapped, CELL, PERIODIC)[1], gradient, atol=1e-10)
    # An equivalent cell: other lattice vectors spanning the same lattice.
    equivalent = np.array([[1, 0, 0], [1, 1, 0], [0, -1, 1]]) @ CELL
    energy_e, gradient_e = evaluate(model, positions, equivalent, PERIODIC)
    assert energy_e == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(gradient_e, gradient, atol=1e-10)
    # ... while for a molecule the same move is a different structure.
    molecular = evaluate(model, positions, None, MOLECULAR)[0]
    assert abs(evaluate(model, wrapped, None, MOLECULAR)[0] - molecular) > 1e-6


def test_supercell_energy_is_extensive(model: MultiHeadPotential) -> None:
    """A small Li cell (atoms see their own images) and its 2x1x2 supercell agree."""
    cell = bulk("Li", "bcc", a=3.44, cubic=True)
    cell.positions += np.random.default_rng(1).normal(scale=0.1, size=cell.positions.shape)
    supercell = cell.repeat((2, 1, 2))
    energy = evaluate_structure(
        model, cell.numbers, cell.positions, cell.cell[:], PERIODIC, "pure"
    ).energy_hartree
    big = evaluate_structure(
        model, supercell.numbers, supercell.positions, supercell.cell[:], PERIODIC, "pure"
    )
    assert big.energy_hartree == pytest.approx(4 * energy, abs=1e-9)


def test_mixed_batch_equals_single_structures(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    graphs = [
        model.graph(NUMBERS, positions, None, MOLECULAR, 1.0),
        model.graph(NUMBERS[:3], positions[:3], CELL, PERIODIC, 0.0),
        model.graph(NUMBERS, positions * 1.05, CELL, (True, True, False), -1.0),
    ]
    batched = model(collate(graphs, model.species))
    single = [model(collate([g], model.species)) for g in graphs]
    torch.testing.assert_close(
        batched.energy_hartree, torch.cat([s.energy_hartree for s in single]), rtol=0, atol=1e-12
    )
    assert batched.charges_e is not None
    torch.testing.assert_close(
        batched.charges_e, torch.cat([s.charges_e for s in single]), rtol=0, atol=1e-12
    )


def test_charges_sum_to_the_total_charge(model: MultiHeadPotential, positions: np.ndarray) -> None:
    totals = [0.0, 1.0, -2.0, 0.5]
    graphs = [
        model.graph(NUMBERS, positions, None, MOLECULAR, totals[0]),
        model.graph(NUMBERS, positions, None, MOLECULAR, totals[1]),
        model.graph(NUMBERS, positions, CELL, PERIODIC, totals[2]),
        model.graph(NUMBERS[:2], positions[:2], CELL, PERIODIC, totals[3]),
    ]
    batch = collate(graphs, model.species)
    charges = model(batch).charges_e
    assert charges is not None
    sums = torch.zeros(4, dtype=charges.dtype).index_add(0, batch.structure_index, charges)
    torch.testing.assert_close(sums, torch.tensor(totals, dtype=sums.dtype), rtol=0, atol=1e-12)
    assert charges.std() > 1e-3  # the charges are not all equal
    # Changing the total charge changes the energy (charges feed the networks and Coulomb).
    neutral = evaluate(model, positions, None, MOLECULAR, total_charge=0.0)[0]
    assert abs(evaluate(model, positions, None, MOLECULAR, total_charge=1.0)[0] - neutral) > 1e-6


def test_physical_terms_are_reported_and_shared_by_heads(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    with torch.no_grad():
        batch = collate([model.graph(NUMBERS, positions, CELL, PERIODIC, 1.0)], model.species)
        output = model(batch)
    assert float(output.dispersion_hartree[0]) < 0  # D3 is attractive
    assert float(output.coulomb_hartree[0]) != 0
    plain = MultiHeadPotential([1, 3, 8], ["pure"], (16,), charge_hidden_sizes=None)
    assert plain.charge_model is None and plain.coulomb is None
    assert plain.pair_cutoff_angstrom == pytest.approx(5.2)
    assert model.pair_cutoff_angstrom == pytest.approx(8.0)


def test_unknown_heads_and_elements_are_refused(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    with pytest.raises(UnknownHeadError, match="not one of this model's heads"):
        energy_and_gradient(model, NUMBERS, positions, None, MOLECULAR, "ccsd")
    with pytest.raises(UnknownElementError, match=r"atomic numbers \[6\]"):
        energy_and_gradient(model, np.array([6, 1]), positions[:2], None, MOLECULAR, "pure")
    with pytest.raises(ValueError, match="non-singular cell"):
        model.graph(NUMBERS, positions, np.zeros((3, 3)), PERIODIC)
