"""Unit conversions used across the platform (CODATA values as ASE has them)."""

from __future__ import annotations

from ase.units import Hartree

#: eV per Hartree.
HARTREE_TO_EV = float(Hartree)
#: meV per Hartree.
HARTREE_TO_MEV = float(Hartree) * 1000.0


def mev_to_hartree(value_mev: float) -> float:
    """meV (per atom, per Å, ...) in Hartree (per the same)."""
    return value_mev / HARTREE_TO_MEV
