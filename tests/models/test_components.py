"""Pieces of eq. 1: torchani AEVs over our pair lists, Coulomb truncation, artifacts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from interphase.models.artifact import ModelFormatError, load_model, read_metadata, save_model
from interphase.models.coulomb import (
    COULOMB_HARTREE_ANGSTROM,
    CoulombParameters,
    shifted_force_potential,
)
from interphase.models.descriptors import AEVParameters, build_structure_graph, collate
from interphase.models.multihead import MultiHeadPotential, evaluate_structure

CELL = np.array([[4.1, 0.0, 0.0], [0.3, 3.9, 0.0], [0.1, 0.2, 4.3]])


@pytest.mark.parametrize("pbc", [(False, False, False), (True, True, True), (True, True, False)])
def test_aevs_equal_torchani_own_neighbour_list(pbc: tuple[bool, bool, bool]) -> None:
    """Our per-structure half lists give torchani's AEVs from its own forward()."""
    rng = np.random.default_rng(0)
    positions = rng.uniform(0, 4, (7, 3))
    species = np.array([0, 1, 0, 0, 1, 0, 1])
    parameters = AEVParameters()
    computer = parameters.build(2).double()
    periodic = any(pbc)
    graph = build_structure_graph(
        np.array([1, 3])[species], positions, CELL if periodic else None, pbc, 5.2
    )
    batch = collate([graph], [1, 3])
    from interphase.models.descriptors import within_cutoff

    neighbors = within_cutoff(batch.pair_index, batch.difference_vectors(), 5.2)
    ours = computer.compute_from_neighbors(
        batch.species_index[None], batch.positions_angstrom[None], neighbors
    )
    coords = torch.tensor(positions)[None]
    elements = torch.tensor(species)[None]
    if periodic:
        reference = computer(elements, coords, torch.tensor(CELL), torch.tensor(pbc))
    else:
        reference = computer(elements, coords)
    assert float(reference.abs().max()) > 0.1
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)


def test_shifted_force_coulomb_vanishes_smoothly_at_the_cutoff() -> None:
    parameters = CoulombParameters(cutoff_angstrom=6.0, damping_angstrom=1.0)
    r = torch.tensor([0.01, 1.0, 3.0, 5.999, 6.0, 7.0], dtype=torch.float64, requires_grad=True)
    phi = shifted_force_potential(r, parameters)
    (slope,) = torch.autograd.grad(phi.sum(), r)
    phi = phi.detach()
    # Finite at short range: erf(r/σ)/r -> 2/(σ√π), not 1/r.
    short = math.erf(0.01) / 0.01 - 1 / 6.0 + (1 / 36.0) * (0.01 - 6.0)
    assert float(phi[0]) == pytest.approx(short, rel=1e-6)
    assert abs(float(phi[3])) < 1e-6 and float(phi[4]) == 0 and float(phi[5]) == 0
    assert abs(float(slope[3])) < 1e-3 and float(slope[5]) == 0  # force continuous at R_c
    # Beyond the damping it is a shifted-force 1/r (erf(3) = 1 - 2e-5).
    undamped = 1 / 3.0 - 1 / 6.0 + (1 / 36.0) * (3.0 - 6.0)
    assert float(phi[2]) == pytest.approx(undamped, rel=1e-3)
    assert pytest.approx(0.529177, rel=1e-5) == COULOMB_HARTREE_ANGSTROM


def test_save_load_predicts_identically(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = MultiHeadPotential([1, 3], ["a", "b"], (8, 8), dispersion_functional="pbe")
    model.set_energy_reference(np.array([[-0.5, -7.4], [-0.6, -7.5]]), np.array([0.01, 0.02]))
    path = save_model(model, tmp_path / "model.pt", {"note": "test"})
    loaded = load_model(path)
    assert loaded.heads == ["a", "b"] and loaded.species == [1, 3]
    assert loaded.dispersion is not None and read_metadata(path) == {"note": "test"}
    numbers = np.array([3, 1, 3])
    positions = np.array([[0.0, 0, 0], [1.6, 0.1, 0], [0.3, 2.5, 0.2]])
    for head in ("a", "b"):
        first = evaluate_structure(model, numbers, positions, CELL, (True,) * 3, head)
        second = evaluate_structure(loaded, numbers, positions, CELL, (True,) * 3, head)
        assert first.energy_hartree == second.energy_hartree
        np.testing.assert_array_equal(
            first.gradient_hartree_per_angstrom, second.gradient_hartree_per_angstrom
        )
        assert first.charges_e is not None and second.charges_e is not None
        np.testing.assert_array_equal(first.charges_e, second.charges_e)
    # Only plain containers and tensors: loadable without trusting pickled code.
    payload = torch.load(path, weights_only=True)
    assert payload["config"]["self_energies_hartree"]["b"]["Li"] == pytest.approx(-7.5)


def test_unreadable_or_old_model_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ModelFormatError, match="not a readable model file"):
        load_model(junk)
    old = tmp_path / "old.pt"
    torch.save({"format_version": 1, "config": {}, "state_dict": {}}, old)
    with pytest.raises(ModelFormatError, match="format_version 1"):
        load_model(old)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
