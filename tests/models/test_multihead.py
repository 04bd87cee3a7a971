"""MultiHeadPotential: gradients, invariances, masking of heads without labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from interphase.models.descriptors import AEVParameters, build_structure_graph, collate
from interphase.models.multihead import MultiHeadPotential, energy_and_gradient

NUMBERS = np.array([3, 3, 1, 3, 1])
MOLECULAR = (False, False, False)
CELL = np.array([[3.6, 0.0, 0.0], [0.4, 3.4, 0.0], [0.2, -0.3, 3.8]])


@pytest.fixture(scope="module")
def model() -> MultiHeadPotential:
    torch.manual_seed(0)
    return MultiHeadPotential([1, 3], ["pbe", "hybrid"], hidden_sizes=(16, 16)).eval()


@pytest.fixture(scope="module")
def positions() -> np.ndarray:
    rng = np.random.default_rng(3)
    grid = np.array([[0, 0, 0], [2.4, 0, 0], [0, 2.3, 0], [0.2, 0.1, 2.5], [2.3, 2.2, 1.4]])
    return grid + rng.normal(scale=0.15, size=grid.shape)


def test_gradient_matches_finite_differences(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    for cell, pbc in ((None, MOLECULAR), (CELL, (True, True, True))):
        _, gradient = energy_and_gradient(model, NUMBERS, positions, cell, pbc, "pbe")
        step = 1e-5
        finite_difference = np.zeros_like(positions)
        checked = [0, 2]  # one Li, one H: keeps the test fast
        for atom in checked:
            for axis in range(3):
                plus, minus = positions.copy(), positions.copy()
                plus[atom, axis] += step
                minus[atom, axis] -= step
                e_plus = energy_and_gradient(model, NUMBERS, plus, cell, pbc, "pbe")[0]
                e_minus = energy_and_gradient(model, NUMBERS, minus, cell, pbc, "pbe")[0]
                finite_difference[atom, axis] = (e_plus - e_minus) / (2 * step)
        assert np.abs(gradient).max() > 1e-4  # not trivially zero
        np.testing.assert_allclose(
            gradient[checked], finite_difference[checked], atol=1e-6 * np.abs(gradient).max()
        )


def test_rotation_and_translation_invariance(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    rotation = Rotation.from_euler("zyx", [0.4, 1.2, -2.0]).as_matrix()
    moved = positions @ rotation.T + np.array([1.0, -7.0, 3.0])
    energy, gradient = energy_and_gradient(model, NUMBERS, positions, None, MOLECULAR, "hybrid")
    energy_moved, gradient_moved = energy_and_gradient(
        model, NUMBERS, moved, None, MOLECULAR, "hybrid"
    )
    assert energy_moved == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(gradient_moved, gradient @ rotation.T, atol=1e-10)


def test_permutation_of_same_element_atoms(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    permutation = np.array([3, 1, 4, 0, 2])
    assert np.array_equal(NUMBERS[permutation], NUMBERS)
    energy, gradient = energy_and_gradient(model, NUMBERS, positions, CELL, (True,) * 3, "pbe")
    energy_p, gradient_p = energy_and_gradient(
        model, NUMBERS, positions[permutation], CELL, (True,) * 3, "pbe"
    )
    assert energy_p == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(gradient_p, gradient[permutation], atol=1e-10)


def test_periodic_image_choice_does_not_matter(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    wrapped = positions.copy()
    wrapped[1] += CELL[0] - 2 * CELL[2]
    wrapped[4] -= CELL[1]
    energy, gradient = energy_and_gradient(model, NUMBERS, positions, CELL, (True,) * 3, "pbe")
    energy_w, gradient_w = energy_and_gradient(model, NUMBERS, wrapped, CELL, (True,) * 3, "pbe")
    assert energy_w == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(gradient_w, gradient, atol=1e-10)
    # ... while for a molecule the same move is a different structure.
    energy_m = energy_and_gradient(model, NUMBERS, positions, None, MOLECULAR, "pbe")[0]
    energy_mw = energy_and_gradient(model, NUMBERS, wrapped, None, MOLECULAR, "pbe")[0]
    assert abs(energy_mw - energy_m) > 1e-6


def test_mixed_batch_equals_single_structures(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    parameters = model.aev_parameters
    graphs = [
        build_structure_graph(NUMBERS, positions, None, MOLECULAR, parameters),
        build_structure_graph(NUMBERS[:3], positions[:3], CELL, (True,) * 3, parameters),
        build_structure_graph(NUMBERS, positions * 1.05, CELL, (True, True, False), parameters),
    ]
    batched = model(collate(graphs, model.species))["hybrid"]
    single = [model(collate([g], model.species))["hybrid"][0] for g in graphs]
    torch.testing.assert_close(batched, torch.stack(single), rtol=0, atol=1e-12)


def test_head_without_labels_gets_no_gradient_on_its_output(
    model: MultiHeadPotential, positions: np.ndarray
) -> None:
    trained = MultiHeadPotential([1, 3], ["pbe", "hybrid"], hidden_sizes=(16, 16))
    trained.load_state_dict(model.state_dict())
    graph = build_structure_graph(NUMBERS, positions, None, MOLECULAR, trained.aev_parameters)
    energies = trained(collate([graph], trained.species))
    # Loss on the "pbe" label only, as the trainer does when "hybrid" is missing.
    (energies["pbe"] ** 2).sum().backward()
    hybrid = trained.head_index("hybrid")
    for network in trained.element_networks:
        assert network.output.weight.grad is not None
        assert torch.all(network.output.weight.grad[hybrid] == 0)
        assert network.output.bias.grad[hybrid] == 0
        assert torch.any(network.output.weight.grad[trained.head_index("pbe")] != 0)
        assert torch.any(network.hidden[0].weight.grad != 0)  # shared layers do learn


def test_descriptor_has_radial_and_angular_parts(model: MultiHeadPotential) -> None:
    parameters = AEVParameters()
    # 2 species x 16 radial shells + 3 species pairs x 4 radial x 8 angle sections
    assert model.aev.aev_length == 2 * 16 + 3 * 4 * 8
    assert parameters.radial_cutoff_angstrom == 5.2
    with pytest.raises(ValueError, match="not among the model species"):
        collate(
            [build_structure_graph(np.array([8]), np.zeros((1, 3)), None, MOLECULAR, parameters)],
            model.species,
        )
