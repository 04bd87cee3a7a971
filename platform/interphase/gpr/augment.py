"""GPR-ANN augmentation: displaced copies of reference structures labeled by a GP.

For each reference structure, M copies are drawn with every Cartesian component
displaced by a Gaussian of width δ (Å); the subset GP predicts their energies and
the std of that prediction. Copies whose std per atom is under a filter are kept
as synthetic energies (paper 002: M = 10–40, δ ≈ 0.034 Å for Li/EC).

This module is pure (no database); :mod:`interphase.gpr.augment_db` stores the
kept copies as synthetic labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interphase.gpr.errors import GPInputError
from interphase.gpr.gp import EnergyGradientGP

#: Paper 002's best displacement width for Li/EC (Å).
DEFAULT_DELTA_ANGSTROM = 0.034
#: Copies per reference structure (the paper finds 10–40 enough).
DEFAULT_COPIES = 20


@dataclass(frozen=True)
class AugmentedCopies:
    """Displaced copies of one structure with their GP energies."""

    positions_angstrom: np.ndarray  # (M, N, 3)
    energy_hartree: np.ndarray  # (M,) GP mean
    energy_std_hartree: np.ndarray  # (M,) GP std of the energy (whole structure)
    kept: np.ndarray  # (M,) bool: std per atom under the filter

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())


def displaced_copies(
    positions_angstrom: np.ndarray,
    copies: int,
    delta_angstrom: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``copies`` versions of (N, 3) positions with N(0, δ²) added to every component."""
    positions = np.asarray(positions_angstrom, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise GPInputError(f"positions_angstrom has shape {positions.shape}; expected (N, 3)")
    if int(copies) < 1:
        raise GPInputError(f"copies must be at least 1; got {copies}")
    if not np.isfinite(delta_angstrom) or delta_angstrom <= 0.0:
        raise GPInputError(f"delta_angstrom must be a positive width in Å; got {delta_angstrom}")
    noise = rng.normal(0.0, float(delta_angstrom), size=(int(copies), *positions.shape))
    return positions[None, :, :] + noise


def augment_positions(
    gp: EnergyGradientGP,
    positions_angstrom: np.ndarray,
    *,
    copies: int = DEFAULT_COPIES,
    delta_angstrom: float = DEFAULT_DELTA_ANGSTROM,
    std_filter_hartree_per_atom: float | None = None,
    seed: int = 0,
    cell_angstrom: np.ndarray | None = None,
) -> AugmentedCopies:
    """Displaced copies of one structure labeled with the GP mean energy.

    Parameters
    ----------
    gp
        Fitted GP of the structure's subset.
    positions_angstrom
        (N, 3) reference structure, atoms in the GP's order.
    copies, delta_angstrom
        Number of copies M and Gaussian displacement width δ (Å).
    std_filter_hartree_per_atom
        Keep a copy only if its predicted energy std divided by N is below this
        (Hartree/atom). ``None`` keeps every copy.
    seed
        Seed of the displacements.
    cell_angstrom
        (3, 3) cell of a periodic structure (needed by periodic SOAP GPs only);
        copies keep the reference's cell.

    Returns
    -------
    AugmentedCopies
        All M copies with their GP mean energy and std; ``kept`` marks those whose
        std per atom is under the filter. The filter is per atom so that one
        threshold (e.g. 1 meV/atom) means the same for small and large structures.
    """
    if std_filter_hartree_per_atom is not None and std_filter_hartree_per_atom <= 0.0:
        raise GPInputError(
            "std_filter_hartree_per_atom must be positive (or None to keep every copy); "
            f"got {std_filter_hartree_per_atom}"
        )
    rng = np.random.default_rng(seed)
    displaced = displaced_copies(positions_angstrom, copies, delta_angstrom, rng)
    cells = None if cell_angstrom is None else np.repeat(np.asarray(cell_angstrom)[None], copies, 0)
    prediction = gp.predict(displaced, cells, gradients=False)
    if std_filter_hartree_per_atom is None:
        kept = np.ones(len(displaced), dtype=bool)
    else:
        kept = prediction.energy_std_hartree / gp.n_atoms < std_filter_hartree_per_atom
    return AugmentedCopies(
        positions_angstrom=displaced,
        energy_hartree=prediction.energy_hartree,
        energy_std_hartree=prediction.energy_std_hartree,
        kept=kept,
    )
