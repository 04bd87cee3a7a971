"""Plain data records that cross module boundaries.

Science modules, dataset I/O and the database all speak these two records.
Units are part of every field name: positions in Å, energies in Hartree,
gradients in Hartree/Å (dE/dx, *not* forces), dipoles in e·Å, charges in e.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

#: Level-of-theory key of GFN2-xTB, the charge-producing level.
XTB_LEVEL = "GFN2-xTB"


@dataclass
class LabelRecord:
    """Reference data of one structure at one level of theory.

    Any field may be ``None``: a missing label stays missing.
    """

    level: str
    total_energy_hartree: float | None = None
    atomization_energy_hartree: float | None = None
    gradient_hartree_per_angstrom: np.ndarray | None = None  # (N, 3), dE/dx
    dipole_e_angstrom: np.ndarray | None = None  # (3,)
    charges_e: np.ndarray | None = None  # (N,)
    #: Free-form provenance (source file, dataset key, where charges sat, ...).
    provenance: dict[str, object] = field(default_factory=dict)


@dataclass
class StructureRecord:
    """One atomic structure, periodic or not, with its labels by level key."""

    numbers: np.ndarray  # (N,) int atomic numbers
    positions_angstrom: np.ndarray  # (N, 3)
    cell_angstrom: np.ndarray | None = None  # (3, 3) lattice vectors as rows, periodic only
    pbc: tuple[bool, bool, bool] = (False, False, False)
    charge: int = 0
    multiplicity: int = 1
    labels: dict[str, LabelRecord] = field(default_factory=dict)
    #: Key of the entry in its source dataset, if it came from one.
    key: str | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def is_periodic(self) -> bool:
        return any(self.pbc)

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[int(z)] for z in self.numbers]

    def to_atoms(self) -> Atoms:
        """ASE ``Atoms`` of this geometry; the charge is in ``atoms.info["charge"]``.

        The cell is set when the record has one; labels, key and multiplicity stay behind.
        """
        atoms = Atoms(numbers=self.numbers, positions=self.positions_angstrom, pbc=self.pbc)
        if self.cell_angstrom is not None:
            atoms.set_cell(self.cell_angstrom)
        atoms.info["charge"] = self.charge
        return atoms

    @classmethod
    def from_atoms(cls, atoms: Atoms, *, charge: int = 0, multiplicity: int = 1) -> StructureRecord:
        """The record of an ASE ``Atoms`` (copied; the cell kept only when periodic).

        ``atoms.info`` is not read: charge and multiplicity are the caller's.
        """
        pbc = (bool(atoms.pbc[0]), bool(atoms.pbc[1]), bool(atoms.pbc[2]))
        return cls(
            numbers=np.asarray(atoms.numbers, dtype=int).copy(),
            positions_angstrom=np.asarray(atoms.positions, dtype=float).copy(),
            cell_angstrom=np.array(atoms.cell, dtype=float) if any(pbc) else None,
            pbc=pbc,
            charge=int(charge),
            multiplicity=int(multiplicity),
        )


def formula(numbers: np.ndarray) -> str:
    """Hill-ordered formula (C, H first, then alphabetical), e.g. ``C3H4O3``."""
    elements, multiplicities = np.unique(np.asarray(numbers), return_counts=True)
    counts = {
        chemical_symbols[int(z)]: int(n) for z, n in zip(elements, multiplicities, strict=True)
    }
    order: list[str] = [s for s in ("C", "H") if s in counts] if "C" in counts else []
    order += sorted(s for s in counts if s not in order)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


def subset_key(numbers: np.ndarray, pbc: tuple[bool, bool, bool] | np.ndarray) -> str:
    """Homogeneous-subset key: composition + atom count + periodicity.

    Two structures share a local GPR exactly when their keys are equal
    (GPR-ANN paper: one GPR per homogeneous subset). Example: ``Li16|16|ppp``.
    """
    return subset_key_of(formula(numbers), len(numbers), pbc)


def subset_key_of(formula_: str, n_atoms: int, pbc: tuple[bool, bool, bool] | np.ndarray) -> str:
    """:func:`subset_key` from an already computed formula."""
    flags = "".join("p" if bool(p) else "n" for p in pbc)
    return f"{formula_}|{n_atoms}|{flags}"
