"""train_multihead on a tiny mixed dataset (molecules + periodic cells, two heads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential
from ase.units import Hartree

from interphase.models.multihead import energy_and_gradient
from interphase.training.trainer import (
    TrainingConfig,
    TrainingDataError,
    TrainingExample,
    load_model,
    save_model,
    train_multihead,
)


def _label(atoms: Atoms, calculator: object) -> tuple[float, np.ndarray]:
    atoms.calc = calculator
    return atoms.get_potential_energy() / Hartree, -atoms.get_forces() / Hartree


def tiny_dataset(n: int = 12, seed: int = 0) -> list[TrainingExample]:
    """Rattled bcc Li clusters (some H) and 2-atom bcc cells; "lj" on all, "morse" on half."""
    rng = np.random.default_rng(seed)
    lattice = bulk("Li", "bcc", a=3.44, cubic=True).repeat(2).positions
    lattice = lattice - lattice.mean(axis=0)
    nearest = np.argsort(np.linalg.norm(lattice, axis=1))
    examples = []
    for k in range(n):
        periodic = k % 3 == 0
        if periodic:
            cell = np.eye(3) * 3.44
            positions = np.array([[0.0, 0.0, 0.0], [1.72, 1.72, 1.72]])
        else:
            cell = None
            positions = lattice[nearest[: int(rng.integers(2, 7))]]
        positions = positions + rng.normal(scale=0.1, size=positions.shape)
        numbers = np.where(rng.random(len(positions)) < 0.3, 1, 3)
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=periodic)
        energies, gradients = {}, {}
        energies["lj"], gradients["lj"] = _label(
            atoms, LennardJones(sigma=2.7, epsilon=0.05, rc=5.0, smooth=True)
        )
        if k % 2 == 0:
            energies["morse"], gradients["morse"] = _label(
                atoms, MorsePotential(epsilon=0.1, r0=3.0, rho0=4.0, rcut1=4.0, rcut2=5.0)
            )
        examples.append(
            TrainingExample(numbers, positions, cell, (periodic,) * 3, energies, gradients)
        )
    return examples


FAST = TrainingConfig(
    epochs=30, batch_size=6, learning_rate=1e-2, hidden_sizes=(16, 16), validation_fraction=0.0
)


@pytest.fixture(scope="module")
def trained() -> tuple[object, list[TrainingExample]]:
    examples = tiny_dataset()
    return train_multihead(examples, ["lj", "morse"], FAST), examples


def test_overfits_tiny_mixed_dataset(trained: tuple[object, list[TrainingExample]]) -> None:
    result, _ = trained
    assert result.loss_history[-1] <= result.loss_history[0] / 10
    for head in ("lj", "morse"):
        metrics = result.metrics[head]
        assert metrics.train_energy_mae_per_atom_hartree is not None
        assert metrics.train_force_mae_hartree_per_angstrom is not None
        assert metrics.validation_energy_mae_per_atom_hartree is None  # no validation split


def test_training_is_deterministic_for_a_seed() -> None:
    examples = tiny_dataset(6, seed=1)
    config = TrainingConfig(epochs=3, batch_size=2, hidden_sizes=(8,), validation_fraction=0.34)
    first = train_multihead(examples, ["lj", "morse"], config)
    second = train_multihead(examples, ["lj", "morse"], config)
    assert first.loss_history == second.loss_history
    np.testing.assert_array_equal(first.validation_indices, second.validation_indices)
    assert len(first.validation_indices) == 2
    assert first.metrics["lj"].validation_energy_mae_per_atom_hartree is not None
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_progress_is_reported_every_epoch() -> None:
    seen: list[tuple[int, float]] = []
    config = TrainingConfig(epochs=2, batch_size=8, hidden_sizes=(8,), validation_fraction=0.0)
    train_multihead(tiny_dataset(4), ["lj"], config, lambda e, m: seen.append((e, m["loss"])))
    assert [epoch for epoch, _ in seen] == [1, 2]


def test_save_load_predicts_identically(
    trained: tuple[object, list[TrainingExample]], tmp_path: Path
) -> None:
    result, examples = trained
    path = tmp_path / "model.pt"
    save_model(result, path)
    loaded = load_model(path)
    assert loaded.heads == ["lj", "morse"] and loaded.species == [1, 3]
    for example in examples[:3]:
        for head in ("lj", "morse"):
            args = (example.numbers, example.positions_angstrom, example.cell_angstrom, example.pbc)
            e0, g0 = energy_and_gradient(result.model, *args, head)
            e1, g1 = energy_and_gradient(loaded, *args, head)
            assert e1 == e0
            np.testing.assert_array_equal(g1, g0)


def test_head_without_any_label_is_refused() -> None:
    with pytest.raises(TrainingDataError, match="'dft' has no energy label"):
        train_multihead(tiny_dataset(2), ["lj", "dft"], FAST)
