"""Electrolyte molecules from SMILES and random molecular clusters."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.data import covalent_radii

from interphase.records import formula
from interphase.structures.config import MoleculesConfig
from interphase.structures.connectivity import molecule_labels
from interphase.structures.molecules import (
    MoleculeError,
    PlacementError,
    molecular_cluster,
    molecule_record,
)
from interphase.structures.recipes import molecules_batch
from interphase.structures.validate import validate_structure

FORMULAS = {
    "EC": "C3H4O3",
    "PC": "C4H6O3",
    "VC": "C3H2O3",
    "DMC": "C3H6O3",
    "DEC": "C5H10O3",
    "EMC": "C4H8O3",
    "FEC": "C3H3FO3",
}


@pytest.mark.parametrize("species", sorted(FORMULAS))
def test_each_electrolyte_has_its_formula_and_sane_bonds(species: str) -> None:
    record = molecule_record(species, seed=1)
    assert formula(record.numbers) == FORMULAS[species]
    assert (record.charge, record.multiplicity) == (0, 1)
    validate_structure(record, check_fragments=True)
    atoms = Atoms(numbers=record.numbers, positions=record.positions_angstrom)
    assert len(set(molecule_labels(atoms))) == 1  # one covalently bonded molecule
    distances = atoms.get_all_distances()
    radii = covalent_radii[record.numbers]
    ratio = distances / (radii[:, None] + radii[None, :])
    np.fill_diagonal(ratio, np.inf)
    assert ratio.min() > 0.8  # no squeezed bonds
    bonded = ratio < 1.2
    assert np.all(bonded.sum(axis=1) >= 1)


def test_ec_carbonyl_bond_is_about_1_2_angstrom() -> None:
    record = molecule_record("EC")
    atoms = Atoms(numbers=record.numbers, positions=record.positions_angstrom)
    carbon = [i for i in range(len(atoms)) if atoms.numbers[i] == 6]
    oxygen = [i for i in range(len(atoms)) if atoms.numbers[i] == 8]
    co = np.array([[atoms.get_distance(c, o) for o in oxygen] for c in carbon])
    assert 1.18 < co.min() < 1.23  # the C=O double bond
    assert np.sum((co > 1.3) & (co < 1.47)) == 4  # four ring C-O single bonds


def test_lithium_species_charge_and_multiplicity() -> None:
    atom, ion = molecule_record("Li"), molecule_record("Li+")
    assert (atom.charge, atom.multiplicity) == (0, 2)
    assert (ion.charge, ion.multiplicity) == (1, 1)


def test_unknown_smiles_is_a_clear_error() -> None:
    with pytest.raises(MoleculeError, match="neither a known species"):
        molecule_record("C1CC(")


def test_cluster_places_whole_molecules_without_overlap() -> None:
    rng = np.random.default_rng(5)
    record, fragments = molecular_cluster(
        ["EC", "DMC", "Li+", "Li"], rng, region="box", size_angstrom=6.0, min_distance_angstrom=2.0
    )
    assert [len(f) for f in fragments] == [10, 12, 1, 1]
    assert record.charge == 1 and record.multiplicity == 2  # 46 + 48 + 2 + 3 = 99 electrons
    positions = record.positions_angstrom
    for k, first in enumerate(fragments):
        for second in fragments[k + 1 :]:
            gap = np.linalg.norm(positions[first][:, None] - positions[second][None], axis=2)
            assert gap.min() >= 2.0
    validate_structure(record, check_fragments=True)


def test_cluster_that_cannot_fit_raises_and_batch_counts_it() -> None:
    with pytest.raises(PlacementError, match="could not place"):
        molecular_cluster(["EC"] * 4, np.random.default_rng(0), size_angstrom=0.1, max_attempts=5)
    config = MoleculesConfig(molecules=[], clusters=[["EC", "EC", "EC"]], size_angstrom=0.1)
    batch = molecules_batch(config)
    assert not batch.items
    assert batch.rejected[("molecular_cluster", "placement_failed")] == 2


def test_same_seed_same_molecules_different_seed_differs() -> None:
    config = MoleculesConfig(molecules=["DEC"], clusters=[["EC", "Li+"]], n_per_cluster=1)
    first, again = molecules_batch(config), molecules_batch(config)
    other = molecules_batch(config.model_copy(update={"seed": 9}))
    assert len(first.items) == len(again.items) == 2
    for a, b in zip(first.items, again.items, strict=True):
        assert np.array_equal(a.record.positions_angstrom, b.record.positions_angstrom)
    for a, c in zip(first.items, other.items, strict=False):
        assert not np.allclose(a.record.positions_angstrom, c.record.positions_angstrom)
