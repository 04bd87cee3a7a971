"""MD snapshots with pluggable calculators, interfaces and interface clusters."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from interphase.labeling.ase_calculator import xtb_calculator
from interphase.records import formula
from interphase.structures.connectivity import molecule_labels
from interphase.structures.interface import (
    Interface,
    InterfaceError,
    build_interface,
    extract_cluster,
    interface_centre,
)
from interphase.structures.md import MDParameterError, langevin_snapshots
from interphase.structures.molecules import molecule
from interphase.structures.validate import InvalidStructureError, validate_structure


def _interface(seed: int = 0) -> Interface:
    return build_interface(
        np.random.default_rng(seed), species=["EC"] * 3, repeats_xy=(3, 3), layers=2
    )


def test_langevin_keeps_every_kth_step_and_is_deterministic() -> None:
    atoms = molecule("EC").atoms.copy()
    runs = [
        langevin_snapshots(
            atoms.copy(),
            LennardJones(sigma=2.0, epsilon=0.01, rc=6.0),
            temperature_k=300.0,
            timestep_fs=0.5,
            n_steps=12,
            snapshot_every=4,
            seed=seed,
        )
        for seed in (1, 1, 2)
    ]
    assert [s.step for s in runs[0].snapshots] == [4, 8, 12]
    assert runs[0].snapshots[-1].time_fs == pytest.approx(6.0)
    first, again, other = (run.snapshots[-1].atoms.positions for run in runs)
    # Same seed, same trajectory (to tblite's threaded round-off); another seed differs.
    np.testing.assert_allclose(first, again, rtol=0, atol=1e-9)
    assert not np.allclose(first, other)


def test_langevin_with_gfn2_xtb_gives_finite_energies() -> None:
    run = langevin_snapshots(
        molecule("EC").atoms.copy(),
        xtb_calculator(),
        temperature_k=300.0,
        timestep_fs=0.5,
        n_steps=6,
        snapshot_every=3,
    )
    assert run.error is None and len(run.snapshots) == 2
    assert np.isfinite([s.potential_energy_ev for s in run.snapshots]).all()


def test_bad_md_parameters_are_refused() -> None:
    with pytest.raises(MDParameterError):
        langevin_snapshots(
            Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]),
            LennardJones(),
            temperature_k=-1.0,
            timestep_fs=0.5,
            n_steps=1,
            snapshot_every=1,
        )


def test_interface_has_li_slab_below_whole_molecules() -> None:
    interface = _interface()
    atoms = interface.atoms
    assert atoms.pbc.all() and interface.n_slab_atoms == 36
    assert np.all(atoms.numbers[: interface.n_slab_atoms] == 3)
    molecules_z = atoms.positions[interface.n_slab_atoms :, 2]
    assert molecules_z.min() > interface.slab_top_angstrom + 1.0


def _shifted_and_wrapped(atoms: Atoms) -> Atoms:
    """Move everything in-plane so molecules straddle the periodic boundary."""
    moved = atoms.copy()
    moved.positions[:, :2] += 0.5 * np.diag(np.array(moved.cell))[:2] + 0.3
    moved.wrap()
    return moved


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interface_clusters_keep_molecules_whole_and_validate(seed: int) -> None:
    interface = _interface(seed)
    atoms = _shifted_and_wrapped(interface.atoms)
    rng = np.random.default_rng(seed)
    valid = 0
    for _ in range(30):
        centre = interface_centre(atoms, interface.slab_top_angstrom, rng)
        record, molecules = extract_cluster(atoms, centre, 5.0)
        if not molecules or not np.any(record.numbers == 3):
            continue
        assert not record.is_periodic
        for members in molecules:
            assert formula(record.numbers[members]) == "C3H4O3"  # no molecule is cut
        cluster = Atoms(numbers=record.numbers, positions=record.positions_angstrom)
        n_li = int(np.sum(record.numbers == 3))
        assert len(set(molecule_labels(cluster, exclude_elements=[3]))) == n_li + len(molecules)
        assert record.multiplicity == 1 + int(record.numbers.sum()) % 2
        try:
            validate_structure(record, check_fragments=True)
        except InvalidStructureError as error:
            # Li on one side of the centre, a molecule on the other: the generator
            # tries another centre; nothing else may go wrong.
            assert error.reason == "fragments"
        else:
            valid += 1
    assert valid >= 3


def test_bad_interface_parameters_are_refused() -> None:
    with pytest.raises(InterfaceError, match="Li slab"):
        build_interface(np.random.default_rng(0), packing="hcp")
    with pytest.raises(InterfaceError, match="cutoff"):
        extract_cluster(_interface().atoms, np.zeros(3), -1.0)
