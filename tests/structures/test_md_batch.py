"""``md_batch`` driven by a model's calculator, from a given start, with the physicality guard."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from interphase.dynamics import PhysicalityGuard
from interphase.models.calculator import InterphaseCalculator
from interphase.models.multihead import MultiHeadPotential
from interphase.records import StructureRecord
from interphase.structures.config import MDConfig
from interphase.structures.interface import build_interface
from interphase.structures.md_recipe import md_batch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> MultiHeadPotential:
    """Untrained: smooth, but it pulls hydrogens into carbons within a few dozen steps."""
    torch.manual_seed(0)
    potential = MultiHeadPotential(
        [1, 3, 6, 8], ["PBE-D3", "hybrid"], hidden_sizes=(16, 16), charge_hidden_sizes=(8,)
    )
    potential.set_energy_reference(
        np.array([[-0.5, -7.4, -37.8, -75.0], [-0.49, -7.5, -37.9, -75.1]]), np.array([0.1, 0.15])
    )
    return potential.eval()


def ethanol_and_lithium() -> StructureRecord:
    atoms = molecule("CH3CH2OH")
    oxygen = atoms.positions[atoms.numbers == 8][0]
    atoms += Atoms("Li", positions=[oxygen + np.array([0.0, 0.0, 2.0])])
    return StructureRecord.from_atoms(atoms, multiplicity=2)  # 29 electrons


def test_a_periodic_start_driven_by_a_model(model: MultiHeadPotential) -> None:
    cell = bulk("Li", "bcc", a=3.44, cubic=True).repeat((2, 2, 2))
    start = StructureRecord.from_atoms(cell)
    calculator = InterphaseCalculator(model, "PBE-D3")
    steps: list[int] = []
    config = MDConfig(n_steps=6, snapshot_every=2, clusters_per_snapshot=1)
    batch = md_batch(config, steps.append, calculator, start=start)
    assert [item.generator for item in batch.items] == ["md_start", *["md_snapshot"] * 3]
    assert steps == [1] * 6 and calculator.session.list_builds > 0
    snapshots = batch.items[1:]
    assert [item.params["step"] for item in snapshots] == [2, 4, 6]
    assert all(item.parent == 0 and item.record.is_periodic for item in snapshots)
    np.testing.assert_allclose(snapshots[0].record.cell_angstrom, start.cell_angstrom)
    assert not np.allclose(snapshots[-1].record.positions_angstrom, start.positions_angstrom)
    assert not batch.rejected  # all Li: no clusters are tried


def test_clusters_are_cut_from_a_periodic_interface_start(model: MultiHeadPotential) -> None:
    interface = build_interface(
        np.random.default_rng(0), species=["EC"] * 3, repeats_xy=(3, 3), layers=2
    )
    config = MDConfig(n_steps=2, snapshot_every=2, clusters_per_snapshot=2, seed=1)
    calculator = InterphaseCalculator(model, "hybrid")
    batch = md_batch(
        config, calculator=calculator, start=StructureRecord.from_atoms(interface.atoms)
    )
    made = batch.made()
    assert made["md_start"] == 1 and made["md_snapshot"] == 1
    clusters = [item for item in batch.items if item.generator == "interface_cluster"]
    tried = made["interface_cluster"] + sum(
        count
        for (generator, _), count in batch.rejected.items()
        if generator == "interface_cluster"
    )
    assert tried == 2 and clusters  # each cluster is made or counted once
    for cluster in clusters:
        assert batch.items[cluster.parent or 0].generator == "md_snapshot"
        assert not cluster.record.is_periodic and (cluster.record.numbers == 3).any()


def test_an_unphysical_run_keeps_its_last_valid_frames(model: MultiHeadPotential) -> None:
    config = MDConfig(n_steps=200, snapshot_every=5, temperature_k=300.0)
    calculator = InterphaseCalculator(model, "hybrid")
    start = ethanol_and_lithium()
    batch = md_batch(config, calculator=calculator, start=start, guard=PhysicalityGuard())
    assert batch.rejected[("md_snapshot", "unphysical")] == 1
    snapshots = [item for item in batch.items if item.generator == "md_snapshot"]
    assert snapshots, "the untrained model should stay physical for a few frames"
    steps = [item.params["step"] for item in snapshots]
    assert steps == list(range(5, 5 * len(steps) + 1, 5)) and steps[-1] < 200
    assert all(item.record.multiplicity == 2 and item.parent == 0 for item in snapshots)
    unguarded = md_batch(config, calculator=calculator, start=start)
    assert ("md_snapshot", "unphysical") not in unguarded.rejected
    assert unguarded.rejected.total() > 0  # the frames after the trip are invalid


def test_an_invalid_start_is_counted_and_not_run(model: MultiHeadPotential) -> None:
    squeezed = StructureRecord(
        numbers=np.array([1, 1]), positions_angstrom=np.array([[0, 0, 0], [0, 0, 0.1]])
    )
    calculator = InterphaseCalculator(model, "hybrid")
    batch = md_batch(MDConfig(n_steps=3), calculator=calculator, start=squeezed)
    assert batch.items == [] and batch.rejected[("md_start", "too_close")] == 1
    assert calculator.session.list_builds == 0
