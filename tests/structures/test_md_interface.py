"""Interfaces and the clusters cut from them (the MD driver: tests/test_dynamics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from interphase.records import formula
from interphase.structures.connectivity import molecule_labels
from interphase.structures.interface import (
    Interface,
    InterfaceError,
    build_interface,
    extract_cluster,
    interface_centre,
)
from interphase.structures.validate import InvalidStructureError, validate_structure


def _interface(seed: int = 0) -> Interface:
    return build_interface(
        np.random.default_rng(seed), species=["EC"] * 3, repeats_xy=(3, 3), layers=2
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
