"""Coulomb energy of predicted charges, damped at short range and truncated smoothly.

Pair potential (Hartree, r in Å, charges in e)::

    φ(r)    = erf(r / σ) / r                       finite as r → 0 (smooth short range)
    φ_sf(r) = φ(r) − φ(R_c) − φ'(R_c) (r − R_c)    for r < R_c, else 0
    E_coul  = k_e Σ_{pairs} q_a q_b φ_sf(r_ab),    k_e = 1 Hartree·Bohr = 0.529177 Hartree·Å

The shifted-force truncation (as in the damped-shifted-force method of Fennell &
Gezelter, 2006) makes energy and force go to zero continuously at ``R_c``. It is a
real-space sum over the half neighbour list, periodic images included, so it is
well defined for molecules and periodic cells alike (each image pair once; an atom
and its own images count with ``q_a²``). It is not an Ewald sum: the long-range
tail beyond ``R_c`` is dropped, the same way for both kinds of structure, so a
network trained with it stays consistent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from ase.units import Bohr

#: Coulomb constant e²/(4πε₀) in Hartree·Å.
COULOMB_HARTREE_ANGSTROM = float(Bohr)


@dataclass(frozen=True)
class CoulombParameters:
    """Cutoff R_c and short-range damping width σ of the Coulomb term (Å)."""

    cutoff_angstrom: float = 8.0
    damping_angstrom: float = 1.0

    def __post_init__(self) -> None:
        if self.cutoff_angstrom <= 0 or self.damping_angstrom <= 0:
            raise ValueError(
                f"Coulomb cutoff ({self.cutoff_angstrom} Å) and damping "
                f"({self.damping_angstrom} Å) must be positive"
            )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def damped_potential(distance: torch.Tensor, damping: float) -> torch.Tensor:
    """erf(r/σ)/r (Å⁻¹)."""
    return torch.erf(distance / damping) / distance


def shifted_force_potential(distance: torch.Tensor, parameters: CoulombParameters) -> torch.Tensor:
    """φ_sf(r) of the module docstring (Å⁻¹), zero at and beyond the cutoff."""
    cutoff, sigma = parameters.cutoff_angstrom, parameters.damping_angstrom
    value_at_cutoff = math.erf(cutoff / sigma) / cutoff
    slope_at_cutoff = (
        2.0 / (sigma * math.sqrt(math.pi)) * math.exp(-((cutoff / sigma) ** 2)) / cutoff
        - value_at_cutoff / cutoff
    )
    inside = distance < cutoff
    safe = torch.where(inside, distance, torch.full_like(distance, cutoff))
    value = damped_potential(safe, sigma) - value_at_cutoff - slope_at_cutoff * (safe - cutoff)
    return torch.where(inside, value, torch.zeros_like(value))


def coulomb_energy(
    charges_e: torch.Tensor,
    pair_index: torch.Tensor,
    distances_angstrom: torch.Tensor,
    pair_structure: torch.Tensor,
    n_structures: int,
    parameters: CoulombParameters,
) -> torch.Tensor:
    """Coulomb energy (B,) in Hartree of each structure from a half pair list."""
    a, b = pair_index
    pair_energy = (
        COULOMB_HARTREE_ANGSTROM
        * charges_e[a]
        * charges_e[b]
        * shifted_force_potential(distances_angstrom, parameters)
    )
    return pair_energy.new_zeros(n_structures).index_add(0, pair_structure, pair_energy)
