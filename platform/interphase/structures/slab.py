"""Periodic Li slabs with vacuum for low-index surfaces, with scaling and noise.

Surfaces are cut by :func:`ase.build.surface` from the (optionally stretched)
conventional cubic cell, so any Miller index works for BCC, FCC and SC alike;
no surface geometry is written by hand here.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import surface

from interphase.records import StructureRecord
from interphase.structures.lattice import LatticeParameterError, cubic_cell, noisy_periodic_lithium


def slab_atoms(
    packing: str,
    miller: tuple[int, int, int],
    layers: int,
    vacuum_angstrom: float,
    lattice_constant_angstrom: float,
    *,
    repeats_xy: tuple[int, int] = (1, 1),
    stretch: np.ndarray | None = None,
) -> Atoms:
    """A noise-free Li slab (ASE ``Atoms``), surface normal along z.

    Parameters
    ----------
    packing
        ``"bcc"``, ``"fcc"`` or ``"sc"``.
    miller
        Miller indices of the surface relative to the conventional cubic cell.
    layers
        Number of repeats of the surface unit cell along the normal.
    vacuum_angstrom
        Vacuum on each side of the slab (Å); the cell is periodic in all three
        directions (as plane-wave codes expect), the vacuum separates images.
    lattice_constant_angstrom
        Cubic lattice constant (Å).
    repeats_xy
        In-plane repeats of the surface cell.
    stretch
        Optional per-axis stretch of the cubic cell before the cut.
    """
    if len(miller) != 3 or not any(miller):
        raise LatticeParameterError(f"Miller indices must be three integers, not all 0: {miller}")
    if layers < 1:
        raise LatticeParameterError(f"layers must be >= 1, got {layers}")
    if vacuum_angstrom <= 0:
        raise LatticeParameterError(f"vacuum_angstrom must be > 0, got {vacuum_angstrom}")
    if len(repeats_xy) != 2 or min(repeats_xy) < 1:
        raise LatticeParameterError(f"repeats_xy must be two integers >= 1, got {repeats_xy}")
    lattice = cubic_cell(packing, lattice_constant_angstrom, stretch)
    slab = surface(lattice, tuple(int(m) for m in miller), layers, vacuum=vacuum_angstrom)
    slab = slab.repeat((repeats_xy[0], repeats_xy[1], 1))
    slab.pbc = True
    return slab


def lithium_slab(
    packing: str,
    miller: tuple[int, int, int],
    layers: int,
    vacuum_angstrom: float,
    lattice_constant_angstrom: float,
    noise_angstrom: float,
    rng: np.random.Generator,
    *,
    repeats_xy: tuple[int, int] = (1, 1),
    stretch: np.ndarray | None = None,
) -> StructureRecord:
    """A periodic Li slab with Gaussian position noise (see :func:`slab_atoms`).

    Raises
    ------
    LatticeParameterError
        For unknown packings, degenerate Miller indices, negative noise and the like.
    """
    if noise_angstrom < 0:
        raise LatticeParameterError(f"noise_angstrom must be >= 0, got {noise_angstrom}")
    slab = slab_atoms(
        packing,
        miller,
        layers,
        vacuum_angstrom,
        lattice_constant_angstrom,
        repeats_xy=repeats_xy,
        stretch=stretch,
    )
    return noisy_periodic_lithium(slab, noise_angstrom, rng)
