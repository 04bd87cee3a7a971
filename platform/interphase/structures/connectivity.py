"""Covalent connectivity: bonds, molecules and unwrapping across periodic images.

Two atoms are bonded when closer than ``bond_factor`` times the sum of their
covalent radii (``ase.data.covalent_radii``), measured between minimum
periodic images. Molecules are the connected components of that bond graph;
unwrapping walks each molecule's bonds so that it is whole in Cartesian space
even when the periodic cell wraps it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Bonds sit below ~1.2x the covalent-radius sum; van der Waals contacts well above.
DEFAULT_BOND_FACTOR = 1.2


def bonds(
    atoms: Atoms,
    *,
    bond_factor: float = DEFAULT_BOND_FACTOR,
    exclude_elements: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bonded pairs ``(i, j, D)``: both directions, ``D`` the minimum-image vector i→j (Å).

    Atoms whose atomic number is in ``exclude_elements`` (e.g. metallic Li)
    take part in no bond.
    """
    # Per-atom cutoffs: neighbor_list joins i and j when d < c_i + c_j.
    radii = np.asarray(covalent_radii)[atoms.numbers] * bond_factor
    i, j, vectors = neighbor_list("ijD", atoms, cutoff=radii, self_interaction=False)
    if len(exclude_elements):
        excluded = np.isin(atoms.numbers, np.asarray(exclude_elements))
        keep = ~(excluded[i] | excluded[j])
        i, j, vectors = i[keep], j[keep], vectors[keep]
    return i, j, vectors


def molecule_labels(
    atoms: Atoms,
    *,
    bond_factor: float = DEFAULT_BOND_FACTOR,
    exclude_elements: Sequence[int] = (),
) -> np.ndarray:
    """Label every atom with the index of its molecule (connected bond component).

    Excluded elements are each a molecule of their own.
    """
    i, j, _ = bonds(atoms, bond_factor=bond_factor, exclude_elements=exclude_elements)
    n_atoms = len(atoms)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n_atoms, n_atoms))
    return np.asarray(connected_components(graph, directed=False)[1])


def unwrapped_positions(
    atoms: Atoms,
    *,
    bond_factor: float = DEFAULT_BOND_FACTOR,
    exclude_elements: Sequence[int] = (),
) -> np.ndarray:
    """Positions (Å) with every molecule made whole by walking its bonds.

    The first atom of each molecule keeps its position; every other atom is
    placed at its bonded neighbour's position plus the minimum-image bond
    vector. Non-periodic structures come back unchanged.
    """
    positions = atoms.positions.copy()
    if not atoms.pbc.any():
        return positions
    i, j, vectors = bonds(atoms, bond_factor=bond_factor, exclude_elements=exclude_elements)
    order = np.argsort(i, kind="stable")
    i, j, vectors = i[order], j[order], vectors[order]
    starts = np.searchsorted(i, np.arange(len(atoms) + 1))
    placed = np.zeros(len(atoms), dtype=bool)
    for root in range(len(atoms)):
        if placed[root]:
            continue
        placed[root] = True
        stack = [root]
        while stack:
            atom = stack.pop()
            for k in range(starts[atom], starts[atom + 1]):
                neighbour = j[k]
                if not placed[neighbour]:
                    positions[neighbour] = positions[atom] + vectors[k]
                    placed[neighbour] = True
                    stack.append(neighbour)
    return positions
