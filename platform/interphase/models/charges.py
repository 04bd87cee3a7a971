"""Partial charges that conserve the total charge, and the charge-weighted radial AEV.

Charge model (QRNN-style, one pass): per-element networks read an atom's AEV and
give a raw charge ``q̃_i`` and a positive redistribution weight ``w_i``; the excess
over the structure's total charge ``Q`` is spread in proportion to the weights,

    q_i = q̃_i + w_i (Q − Σ_j q̃_j) / Σ_j w_j ,

so Σ_i q_i = Q exactly for every structure (molecule or periodic cell). Charges in e.

Charge-weighted radial descriptor ``G^qR`` (Jacobson et al.): the radial AEV
terms with each neighbour's contribution multiplied by its charge,
``G^qR_{i,s,k} = Σ_{j∈s} q_j · g_k(r_ij)``, one block per neighbour element s.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Smallest redistribution weight (keeps Σ w away from zero).
_MIN_WEIGHT = 1e-3


def element_mlp(n_inputs: int, hidden_sizes: Sequence[int], n_outputs: int) -> torch.nn.Sequential:
    """ANI-style MLP: Linear + CELU(0.1) hidden layers, then a linear output."""
    layers: list[torch.nn.Module] = []
    width = n_inputs
    for size in hidden_sizes:
        layers += [torch.nn.Linear(width, size), torch.nn.CELU(alpha=0.1)]
        width = size
    layers.append(torch.nn.Linear(width, n_outputs))
    return torch.nn.Sequential(*layers)


def per_element(
    networks: torch.nn.ModuleList, features: torch.Tensor, species_index: torch.Tensor, width: int
) -> torch.Tensor:
    """Apply network k to the atoms of species k; output (A, width)."""
    out = features.new_zeros(species_index.shape[0], width)
    for k, network in enumerate(networks):
        rows = (species_index == k).nonzero().flatten()
        out = out.index_copy(0, rows, network(features.index_select(0, rows)).to(out.dtype))
    return out


def segment_sum(values: torch.Tensor, segment: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum of ``values`` (A, ...) per segment id (A,) -> (n_segments, ...)."""
    out = values.new_zeros((n_segments, *values.shape[1:]))
    return out.index_add(0, segment, values)


class ChargeModel(torch.nn.Module):
    """Per-element charge networks with exact total-charge conservation.

    Parameters
    ----------
    n_inputs
        AEV length.
    n_species
        Number of elements.
    hidden_sizes
        Hidden widths of every element's charge network.
    """

    def __init__(self, n_inputs: int, n_species: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.networks = torch.nn.ModuleList(
            element_mlp(n_inputs, hidden_sizes, 2) for _ in range(n_species)
        )

    def forward(
        self,
        aev: torch.Tensor,
        species_index: torch.Tensor,
        structure_index: torch.Tensor,
        total_charge_e: torch.Tensor,
    ) -> torch.Tensor:
        """Charges (A,) in e; per structure they sum to ``total_charge_e`` (B,)."""
        raw = per_element(self.networks, aev, species_index, 2)
        charge, weight = raw[:, 0], torch.nn.functional.softplus(raw[:, 1]) + _MIN_WEIGHT
        n_structures = total_charge_e.shape[0]
        excess = total_charge_e - segment_sum(charge, structure_index, n_structures)
        share = excess / segment_sum(weight, structure_index, n_structures)
        return charge + weight * share[structure_index]


def charge_weighted_radial(
    radial_terms: torch.Tensor,
    pair_index: torch.Tensor,
    charges_e: torch.Tensor,
    species_index: torch.Tensor,
    n_species: int,
) -> torch.Tensor:
    """``G^qR`` (A, n_species · shells) from radial terms (P, shells) of a half pair list."""
    n_atoms, shells = species_index.shape[0], radial_terms.shape[1]
    a, b = pair_index
    out = radial_terms.new_zeros(n_atoms * n_species, shells)
    # Atom a sees neighbour b (and vice versa) in b's element block.
    out = out.index_add(0, a * n_species + species_index[b], radial_terms * charges_e[b, None])
    out = out.index_add(0, b * n_species + species_index[a], radial_terms * charges_e[a, None])
    return out.reshape(n_atoms, n_species * shells)
