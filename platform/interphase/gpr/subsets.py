"""Homogeneous subsets of labeled structures, as arrays ready for a GP.

A subset is the set of structures sharing composition, atom count and
periodicity (:func:`interphase.records.subset_key`); one GP is fitted per subset
and level of theory. Structures of one subset may list their atoms in different
orders, so every structure is reordered by atomic number (stable) before it
reaches a GP; :func:`gp_arrays` does the same for candidates and copies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.models import Label, LevelOfTheory, Structure
from interphase.gpr.inputs import align_to_reference


@dataclass
class SubsetData:
    """Labeled structures of one subset at one level, as arrays (atoms sorted by Z)."""

    subset_key: str
    numbers: np.ndarray  # (N,)
    pbc: tuple[bool, bool, bool]
    label_ids: np.ndarray  # (n,)
    structure_ids: np.ndarray  # (n,)
    positions_angstrom: np.ndarray  # (n, N, 3)
    energies_hartree: np.ndarray  # (n,)
    gradients_hartree_per_angstrom: np.ndarray  # (n, N, 3)
    cells_angstrom: np.ndarray | None = None  # (n, 3, 3) when periodic

    @property
    def periodic(self) -> bool:
        return any(self.pbc)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def take(self, indices: np.ndarray) -> SubsetData:
        """The structures at ``indices`` (same subset)."""
        return SubsetData(
            self.subset_key,
            self.numbers,
            self.pbc,
            self.label_ids[indices],
            self.structure_ids[indices],
            self.positions_angstrom[indices],
            self.energies_hartree[indices],
            self.gradients_hartree_per_angstrom[indices],
            None if self.cells_angstrom is None else self.cells_angstrom[indices],
        )


def gp_arrays(structure: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(order, positions sorted by Z, cell or None) of a structure row, as a GP sees it."""
    order = np.argsort(structure.numbers, kind="stable")
    cell = None
    if any(structure.pbc_flags) and structure.cell_angstrom is not None:
        cell = np.asarray(structure.cell_angstrom, dtype=np.float64)
    return order, np.asarray(structure.positions_angstrom)[order], cell


def load_subsets(
    session: Session,
    level: str,
    campaign_id: int | None = None,
    subset_keys: Sequence[str] | None = None,
    *,
    exclude_structure_ids: Collection[int] = (),
) -> list[SubsetData]:
    """Energy+gradient reference labels at ``level`` grouped by subset key, in subset-key order.

    Only ``Label`` rows count (reference calculations); synthetic labels never
    do. Labels are in structure-id order within a subset, so the same database
    gives the same arrays however the labels were written. Structures in
    ``exclude_structure_ids`` (a campaign's test split) are left out.
    """
    query = (
        select(Label.id, Structure, Label.total_energy_hartree, Label.gradient_hartree_per_angstrom)
        .join(Structure, Label.structure_id == Structure.id)
        .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
        .where(
            LevelOfTheory.name == level,
            Label.total_energy_hartree.is_not(None),
            Label.gradient_hartree_per_angstrom.is_not(None),
        )
        .order_by(Structure.id, Label.id)
    )
    if campaign_id is not None:
        query = query.where(membership.training_label(campaign_id))
    if subset_keys:
        query = query.where(Structure.subset_key.in_(list(subset_keys)))
    excluded = set(exclude_structure_ids)
    groups: dict[str, list[tuple[int, Structure, float, np.ndarray]]] = defaultdict(list)
    for label_id, structure, energy, gradient in session.execute(query).all():
        if structure.id not in excluded:
            groups[structure.subset_key].append((label_id, structure, energy, gradient))
    return [_subset_arrays(key, rows) for key, rows in sorted(groups.items())]


def _subset_arrays(key: str, rows: list[tuple[int, Structure, float, np.ndarray]]) -> SubsetData:
    arrays = [gp_arrays(structure) for _, structure, _, _ in rows]
    first = rows[0][1]
    pbc = first.pbc_flags
    cells = None
    if any(pbc):
        cells = np.stack([c if c is not None else np.zeros((3, 3)) for _, _, c in arrays])
    return SubsetData(
        subset_key=key,
        numbers=np.asarray(first.numbers)[arrays[0][0]],
        pbc=pbc,
        label_ids=np.array([r[0] for r in rows]),
        structure_ids=np.array([r[1].id for r in rows]),
        positions_angstrom=np.stack([positions for _, positions, _ in arrays]),
        energies_hartree=np.array([r[2] for r in rows]),
        gradients_hartree_per_angstrom=np.stack(
            [np.asarray(r[3])[order] for r, (order, _, _) in zip(rows, arrays, strict=True)]
        ),
        cells_angstrom=cells,
    )


def aligned_inputs(positions_angstrom: np.ndarray, periodic: bool) -> np.ndarray:
    """Structures in a common frame: molecules centred and rotated onto the first."""
    reference = positions_angstrom[0] - positions_angstrom[0].mean(axis=0)
    return align_to_reference(positions_angstrom, reference, periodic)[0]
