"""Comparison helper shared by the dataset I/O tests."""

from __future__ import annotations

import numpy as np

from interphase.records import StructureRecord

ARRAY_FIELDS = ("gradient_hartree_per_angstrom", "dipole_e_angstrom", "charges_e")


def assert_same_records(a: StructureRecord, b: StructureRecord, *, provenance: bool = True) -> None:
    """Bit-exact equality of two records, missing labels included."""
    assert a.key == b.key
    assert np.array_equal(a.numbers, b.numbers)
    assert np.array_equal(a.positions_angstrom, b.positions_angstrom)
    assert (a.cell_angstrom is None) == (b.cell_angstrom is None)
    if a.cell_angstrom is not None and b.cell_angstrom is not None:
        assert np.array_equal(a.cell_angstrom, b.cell_angstrom)
    assert (a.pbc, a.charge, a.multiplicity) == (b.pbc, b.charge, b.multiplicity)
    assert list(a.labels) == list(b.labels)
    for level, la in a.labels.items():
        lb = b.labels[level]
        assert la.total_energy_hartree == lb.total_energy_hartree, level
        assert la.atomization_energy_hartree == lb.atomization_energy_hartree, level
        for name in ARRAY_FIELDS:
            va, vb = getattr(la, name), getattr(lb, name)
            assert (va is None) == (vb is None), (level, name)
            if va is not None:
                assert np.array_equal(va, vb), (level, name)
        if provenance:
            assert la.provenance == lb.provenance, level
