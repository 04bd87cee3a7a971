"""Neighbour pairs within a cutoff: vesin's compiled cell list, ASE's as the fallback.

:func:`neighbour_pairs` returns the full list (every pair both ways, and an atom
with its own periodic images), as ASE's ``primitive_neighbor_list("ijS")`` does:
``i``, ``j`` and the integer cell shift ``S`` with the pair vector
``x_j − x_i + S @ cell`` (Å). The two backends give the same set of pairs;
their order differs, and callers must not depend on it. vesin (``pip install
vesin``, a dependency of interphase) is 10–100× faster than ASE's Python cell
list on a thousand atoms; ``INTERPHASE_NEIGHBOURS=ase`` forces the fallback,
e.g. to compare them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache

import numpy as np

BACKEND_ENV = "INTERPHASE_NEIGHBOURS"


@cache
def _vesin_available() -> bool:
    try:
        import vesin  # noqa: F401
    except ImportError:  # pragma: no cover - vesin is a dependency
        return False
    return True


def backend() -> str:
    """``"vesin"`` or ``"ase"``: the list :func:`neighbour_pairs` uses now."""
    if os.environ.get(BACKEND_ENV, "").strip().lower() == "ase" or not _vesin_available():
        return "ase"
    return "vesin"


def neighbour_pairs(
    pbc: Sequence[bool] | np.ndarray,
    cell_angstrom: np.ndarray,
    positions_angstrom: np.ndarray,
    cutoff_angstrom: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list ``(i, j, S)`` within ``cutoff_angstrom`` (see the module docstring).

    ``cell_angstrom`` may be all zeros when no direction is periodic.
    """
    positions = np.ascontiguousarray(positions_angstrom, dtype=np.float64)
    flags = np.asarray(pbc, dtype=bool)
    cell = np.asarray(cell_angstrom, dtype=np.float64)
    if backend() == "ase" or len(positions) == 0:
        from ase.neighborlist import primitive_neighbor_list

        i, j, shifts = primitive_neighbor_list("ijS", flags, cell, positions, cutoff_angstrom)
        return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)
    from vesin import NeighborList

    box = cell if flags.any() else np.zeros((3, 3))
    i, j, shifts = NeighborList(cutoff=float(cutoff_angstrom), full_list=True).compute(
        points=positions, box=box, periodic=[bool(p) for p in flags], quantities="ijS"
    )
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)
