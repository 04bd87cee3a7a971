"""Optional empirical dispersion: torchani's two-body DFT-D3(BJ) over our pair lists.

``E_disp`` of eq. 1 is a fixed (untrained) term added to every head. torchani's
``TwoBodyDispersionD3`` (coordination-number-dependent C6, Becke–Johnson damping,
smooth cutoff) is used as is; it works on any neighbour list, so it handles
periodic images the same way as molecules. The three-body term and long-range
tail beyond the cutoff are not included.
"""

from __future__ import annotations

import torch
from ase.data import chemical_symbols

from interphase.models.descriptors import Neighbors


class D3Dispersion(torch.nn.Module):
    """Two-body D3(BJ) dispersion of a functional (e.g. ``"wb97x"``, ``"pbe"``).

    Parameters
    ----------
    species
        Atomic numbers, in model order.
    functional
        Key of torchani's D3BJ parameter table (lower case).
    cutoff_angstrom
        Pairs beyond this distance are ignored (smooth cutoff).
    """

    def __init__(self, species: list[int], functional: str, cutoff_angstrom: float) -> None:
        super().__init__()
        from torchani.constants import FUNCTIONAL_D3BJ_CONSTANTS
        from torchani.potentials import TwoBodyDispersionD3

        if functional.lower() not in FUNCTIONAL_D3BJ_CONSTANTS:
            raise ValueError(
                f"no D3BJ parameters for functional {functional!r}; known: "
                f"{sorted(FUNCTIONAL_D3BJ_CONSTANTS)}"
            )
        self.functional = functional.lower()
        self.cutoff_angstrom = float(cutoff_angstrom)
        self.potential = TwoBodyDispersionD3.from_functional(
            [chemical_symbols[z] for z in species], self.functional, cutoff=self.cutoff_angstrom
        )

    def forward(
        self,
        species_index: torch.Tensor,
        positions_angstrom: torch.Tensor,
        neighbors: Neighbors,
    ) -> torch.Tensor:
        """Dispersion energy per atom (A,) in Hartree; pairs must lie within the cutoff."""
        result = self.potential.compute_from_neighbors(
            species_index[None], positions_angstrom[None], neighbors, atomic=True
        )
        return result.energies[0]
