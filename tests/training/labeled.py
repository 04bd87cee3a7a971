"""Tiny mixed datasets with real GFN2-xTB / GFN1-xTB labels from tblite (milliseconds).

Molecules (LiH, H2O, LiOH, Li2O-like clusters, rattled) carry both levels and
GFN2-xTB charges; periodic bcc Li cells carry GFN1-xTB only, like the paper's
periodic PBE-D3 data beside the molecular hybrid data.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule

from interphase.labeling.engines.contract import Calculation
from interphase.labeling.engines.tblite import TBLiteEngine
from interphase.records import StructureRecord
from interphase.training.dataset import TrainingExample

MOLECULAR_LEVEL = "GFN2-xTB"  # plays the hybrid level: molecules only, with charges
SHARED_LEVEL = "GFN1-xTB"  # plays the pure level: molecules and periodic cells


def _molecules() -> list[Atoms]:
    lih = Atoms("LiH", positions=[[0, 0, 0], [1.6, 0, 0]])
    lioh = Atoms("LiOH", positions=[[0, 0, 0], [1.6, 0, 0], [2.55, 0.1, 0]])
    li2o = Atoms("Li2O", positions=[[0, 0, 0], [1.65, 0.6, 0], [3.3, 0, 0]])
    return [lih, molecule("H2O"), lioh, li2o]


def label(atoms: Atoms, level: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (Hartree), gradient (Hartree/Å) and charges (e) at a tblite level."""
    record = StructureRecord(
        numbers=atoms.numbers,
        positions_angstrom=atoms.positions,
        cell_angstrom=np.asarray(atoms.cell[:]) if atoms.pbc.any() else None,
        pbc=(bool(atoms.pbc[0]), bool(atoms.pbc[1]), bool(atoms.pbc[2])),
    )
    result = TBLiteEngine().compute(record, Calculation(method=level))
    assert result.total_energy_hartree is not None
    assert result.gradient_hartree_per_angstrom is not None and result.charges_e is not None
    return result.total_energy_hartree, result.gradient_hartree_per_angstrom, result.charges_e


def rattled(atoms: Atoms, rng: np.random.Generator, scale: float) -> Atoms:
    copy = atoms.copy()
    copy.positions += rng.normal(scale=scale, size=copy.positions.shape)
    return copy


def example(atoms: Atoms, levels: tuple[str, ...], charges: bool) -> TrainingExample:
    energies, gradients = {}, {}
    charges_e = None
    for level in levels:
        energies[level], gradients[level], q = label(atoms, level)
        if charges and level == MOLECULAR_LEVEL:
            charges_e = q
    periodic = bool(atoms.pbc.any())
    return TrainingExample(
        numbers=atoms.numbers.copy(),
        positions_angstrom=atoms.positions.copy(),
        cell_angstrom=np.asarray(atoms.cell[:]) if periodic else None,
        pbc=(periodic,) * 3,
        energies_hartree=energies,
        gradients_hartree_per_angstrom=gradients,
        charges_e=charges_e,
    )


@cache
def mixed_dataset(
    n_molecular: int = 8, n_periodic: int = 3, seed: int = 0
) -> tuple[TrainingExample, ...]:
    """Rattled molecules at both levels with charges, and periodic Li cells at one level."""
    rng = np.random.default_rng(seed)
    molecules = _molecules()
    examples = [
        example(
            rattled(molecules[k % len(molecules)], rng, 0.05), (MOLECULAR_LEVEL, SHARED_LEVEL), True
        )
        for k in range(n_molecular)
    ]
    cell = bulk("Li", "bcc", a=3.44, cubic=True)
    for _ in range(n_periodic):
        atoms = rattled(cell, rng, 0.08)
        atoms.set_cell(cell.cell * rng.uniform(0.97, 1.03), scale_atoms=True)
        examples.append(example(atoms, (SHARED_LEVEL,), False))
    return tuple(examples)


def as_record(example: TrainingExample) -> StructureRecord:
    """A database record with the example's labels (charges under GFN2-xTB)."""
    from interphase.records import LabelRecord

    labels = {
        level: LabelRecord(
            level=level,
            total_energy_hartree=energy,
            gradient_hartree_per_angstrom=example.gradients_hartree_per_angstrom[level],
            charges_e=example.charges_e if level == MOLECULAR_LEVEL else None,
        )
        for level, energy in example.energies_hartree.items()
    }
    return StructureRecord(
        numbers=example.numbers,
        positions_angstrom=example.positions_angstrom,
        cell_angstrom=example.cell_angstrom,
        pbc=example.pbc,
        labels=labels,
    )


def store_mixed_dataset(url: str, n_molecular: int = 8, n_periodic: int = 3) -> list[int]:
    """Store :func:`mixed_dataset` with its labels; returns the structure ids."""
    from interphase.db.session import transaction
    from interphase.db.structures import store_structures

    records = [as_record(ex) for ex in mixed_dataset(n_molecular, n_periodic)]
    with transaction(url) as session:
        return store_structures(session, records, generator="test").ids
