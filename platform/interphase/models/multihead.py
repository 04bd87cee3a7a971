"""Multi-head neural network potential (paper 000, eq. 1).

``E_j = Σ_i [ s_j · NN^j_{Z_i}(G_i^AEV, q_i, G_i^qR) + e_self(j, Z_i) ] + E_coul(q) + E_disp``

- ``G^AEV``: torchani ANI AEVs (radial cutoff 5.2 Å by default) over per-structure
  neighbour lists with periodic images (:mod:`interphase.models.descriptors`).
- ``q``: charges from per-element charge networks on the AEV that conserve each
  structure's total charge; ``G^qR``: charge-weighted radial AEV
  (:mod:`interphase.models.charges`).
- ``NN^j_Z``: one MLP per element whose hidden layers are shared by all heads
  (levels of theory) and whose linear output layer has one row per head.
- ``s_j``, ``e_self``: per-head energy scale and per-head, per-element
  self-energies fitted by least squares to the training energies (buffers).
- ``E_coul``: damped, shifted-force truncated Coulomb energy of the charges
  (:mod:`interphase.models.coulomb`); ``E_disp``: optional two-body D3(BJ)
  (:mod:`interphase.models.dispersion`). Both are the same for every head.

Energies Hartree, positions Å, gradients Hartree/Å (dE/dx), charges e.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from ase.data import chemical_symbols

from interphase.models.charges import (
    ChargeModel,
    charge_weighted_radial,
    per_element,
    segment_sum,
)
from interphase.models.coulomb import CoulombParameters, coulomb_energy
from interphase.models.descriptors import (
    AEVParameters,
    AtomsBatch,
    StructureGraph,
    build_structure_graph,
    collate,
    within_cutoff,
)
from interphase.models.dispersion import D3Dispersion

#: Coulomb settings of a default model (8 Å shifted-force cutoff, 1 Å damping).
DEFAULT_COULOMB = CoulombParameters()


class UnknownHeadError(KeyError):
    """A head (level of theory) the model does not have was asked for."""


class ElementNetwork(torch.nn.Module):
    """Hidden layers shared by all heads, then one linear output per head."""

    def __init__(self, n_inputs: int, hidden_sizes: Sequence[int], n_heads: int) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = n_inputs
        for size in hidden_sizes:
            layers += [torch.nn.Linear(width, size), torch.nn.CELU(alpha=0.1)]
            width = size
        self.hidden = torch.nn.Sequential(*layers)
        #: Row h of the weight is head h's output layer.
        self.output = torch.nn.Linear(width, n_heads)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(features))


@dataclass
class PotentialOutput:
    """Model output for a flat batch of B structures with A atoms and H heads."""

    energy_hartree: torch.Tensor  # (B, H), every term of eq. 1 included
    charges_e: torch.Tensor | None  # (A,), None without a charge model
    coulomb_hartree: torch.Tensor  # (B,)
    dispersion_hartree: torch.Tensor  # (B,)


class MultiHeadPotential(torch.nn.Module):
    """Eq. 1 of paper 000 with one output head per level of theory.

    Parameters
    ----------
    species
        Atomic numbers the model handles, e.g. ``[1, 3, 6, 8]`` (sorted internally).
    heads
        Level-of-theory keys, one output each.
    hidden_sizes
        Widths of the shared hidden layers of every element's energy network.
    aev_parameters
        AEV settings (radial cutoff 5.2 Å by default).
    dtype
        Parameter and buffer dtype (float64: total energies of hundreds of Hartree
        lose meV in float32).
    charge_hidden_sizes
        Hidden widths of the charge networks; ``None`` for a model without charges
        (then no ``G^qR`` and no Coulomb term either).
    coulomb
        Coulomb term settings; ``None`` to leave the term out.
    dispersion_functional
        D3(BJ) parameter set of the optional dispersion term (e.g. ``"wb97x"``);
        ``None`` (default) for none.
    dispersion_cutoff_angstrom
        Cutoff of the dispersion term.
    """

    self_energy_hartree: torch.Tensor  # (heads, species) buffer
    energy_scale_hartree: torch.Tensor  # (heads,) buffer

    def __init__(
        self,
        species: Sequence[int],
        heads: Sequence[str],
        hidden_sizes: Sequence[int] = (64, 64),
        aev_parameters: AEVParameters | None = None,
        dtype: torch.dtype = torch.float64,
        *,
        charge_hidden_sizes: Sequence[int] | None = (32,),
        coulomb: CoulombParameters | None = DEFAULT_COULOMB,
        dispersion_functional: str | None = None,
        dispersion_cutoff_angstrom: float = 8.0,
    ) -> None:
        super().__init__()
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be non-empty and unique; got {list(heads)}")
        if not species:
            raise ValueError("species must not be empty")
        self.species = [int(z) for z in sorted(set(species))]
        self.heads = list(heads)
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        self.aev_parameters = aev_parameters or AEVParameters()
        self.aev = self.aev_parameters.build(len(self.species))
        n_species, n_shells = len(self.species), self.aev_parameters.radial_shells
        n_features = int(self.aev.out_dim)
        self.charge_hidden_sizes = (
            None if charge_hidden_sizes is None else [int(h) for h in charge_hidden_sizes]
        )
        self.charge_model: ChargeModel | None = None
        if self.charge_hidden_sizes is not None:
            self.charge_model = ChargeModel(n_features, n_species, self.charge_hidden_sizes)
            n_features += 1 + n_species * n_shells  # q_i and G^qR_i
        self.coulomb = coulomb if self.charge_model is not None else None
        self.dispersion: D3Dispersion | None = None
        if dispersion_functional is not None:
            self.dispersion = D3Dispersion(
                self.species, dispersion_functional, dispersion_cutoff_angstrom
            )
        self.element_networks = torch.nn.ModuleList(
            ElementNetwork(n_features, self.hidden_sizes, len(self.heads)) for _ in self.species
        )
        self.register_buffer("self_energy_hartree", torch.zeros(len(self.heads), n_species))
        self.register_buffer("energy_scale_hartree", torch.ones(len(self.heads)))
        #: bf16 autocast of the element networks on CUDA (never the sums); not saved.
        self.mixed_precision = False
        self.to(dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.self_energy_hartree.dtype

    @property
    def device(self) -> torch.device:
        return self.self_energy_hartree.device

    @property
    def pair_cutoff_angstrom(self) -> float:
        """Neighbour-list cutoff the model needs (largest of AEV, Coulomb, dispersion)."""
        cutoffs = [self.aev_parameters.radial_cutoff_angstrom]
        if self.coulomb is not None:
            cutoffs.append(self.coulomb.cutoff_angstrom)
        if self.dispersion is not None:
            cutoffs.append(self.dispersion.cutoff_angstrom)
        return max(cutoffs)

    def head_index(self, head: str) -> int:
        if head not in self.heads:
            raise UnknownHeadError(f"head {head!r} is not one of this model's heads {self.heads}")
        return self.heads.index(head)

    def graph(
        self,
        numbers: np.ndarray,
        positions_angstrom: np.ndarray,
        cell_angstrom: np.ndarray | None,
        pbc: Sequence[bool],
        total_charge_e: float = 0.0,
    ) -> StructureGraph:
        """Neighbour list of one structure at the cutoff this model needs."""
        return build_structure_graph(
            numbers,
            positions_angstrom,
            cell_angstrom,
            pbc,
            self.pair_cutoff_angstrom,
            total_charge_e,
        )

    def forward(self, batch: AtomsBatch) -> PotentialOutput:
        """Energies of every head, charges and the physical terms of a flat batch."""
        return self.compute(
            batch.species_index,
            batch.positions_angstrom,
            batch.structure_index,
            batch.total_charge_e,
            batch.pair_index,
            batch.difference_vectors(),
        )

    def compute(
        self,
        species_index: torch.Tensor,
        positions_angstrom: torch.Tensor,
        structure_index: torch.Tensor,
        total_charge_e: torch.Tensor,
        pair_index: torch.Tensor,
        diff_vectors: torch.Tensor,
    ) -> PotentialOutput:
        """Eq. 1 from a half pair list with difference vectors ``x_a - x_b + shift``.

        The pair list must hold every pair within :attr:`pair_cutoff_angstrom`
        (more is fine). This is the entry point for callers with their own
        neighbour lists (e.g. torchani's cell list on a GPU).
        """
        n_structures, n_species = total_charge_e.shape[0], len(self.species)
        radial = within_cutoff(pair_index, diff_vectors, self.aev_parameters.radial_cutoff_angstrom)
        aev = self.aev.compute_from_neighbors(species_index[None], positions_angstrom[None], radial)
        aev = aev[0]
        features, charges = aev, None
        if self.charge_model is not None:
            charges = self.charge_model(aev, species_index, structure_index, total_charge_e)
            terms = self.aev.radial(radial.distances)
            charge_radial = charge_weighted_radial(
                terms, radial.indices, charges, species_index, n_species
            )
            features = torch.cat([aev, charges[:, None], charge_radial], dim=1)
        atomic = self._atomic_outputs(features, species_index)
        atomic = atomic * self.energy_scale_hartree + self.self_energy_hartree.T[species_index]
        energy = segment_sum(atomic, structure_index, n_structures)
        coulomb = energy.new_zeros(n_structures)
        if self.coulomb is not None and charges is not None:
            pairs = within_cutoff(pair_index, diff_vectors, self.coulomb.cutoff_angstrom)
            coulomb = coulomb_energy(
                charges,
                pairs.indices,
                pairs.distances,
                structure_index[pairs.indices[0]],
                n_structures,
                self.coulomb,
            )
        dispersion = energy.new_zeros(n_structures)
        if self.dispersion is not None:
            pairs = within_cutoff(pair_index, diff_vectors, self.dispersion.cutoff_angstrom)
            per_atom = self.dispersion(species_index, positions_angstrom, pairs)
            dispersion = segment_sum(per_atom, structure_index, n_structures)
        energy = energy + (coulomb + dispersion)[:, None]
        return PotentialOutput(energy, charges, coulomb, dispersion)

    def _atomic_outputs(self, features: torch.Tensor, species_index: torch.Tensor) -> torch.Tensor:
        """Network outputs (A, heads) in units of the head scales."""
        if self.mixed_precision and features.is_cuda:
            # Only the MLP matmuls in bf16; outputs are cast back before any sum.
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return per_element(self.element_networks, features, species_index, len(self.heads))
        return per_element(self.element_networks, features, species_index, len(self.heads))

    def set_energy_reference(
        self, self_energy_hartree: np.ndarray, energy_scale_hartree: np.ndarray
    ) -> None:
        """Set self-energies (heads, species) and per-head residual scales (heads,)."""
        self.self_energy_hartree.copy_(torch.as_tensor(self_energy_hartree))
        self.energy_scale_hartree.copy_(torch.as_tensor(energy_scale_hartree))

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the architecture (plus readable self-energies)."""
        self_energies = self.self_energy_hartree.detach().cpu().numpy()
        return {
            "species": list(self.species),
            "heads": list(self.heads),
            "hidden_sizes": list(self.hidden_sizes),
            "charge_hidden_sizes": self.charge_hidden_sizes,
            "aev_parameters": self.aev_parameters.to_dict(),
            "coulomb": None if self.coulomb is None else self.coulomb.to_dict(),
            "dispersion": None
            if self.dispersion is None
            else {
                "functional": self.dispersion.functional,
                "cutoff_angstrom": self.dispersion.cutoff_angstrom,
            },
            "self_energies_hartree": {
                head: {
                    chemical_symbols[z]: float(self_energies[h, s])
                    for s, z in enumerate(self.species)
                }
                for h, head in enumerate(self.heads)
            },
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], dtype: torch.dtype = torch.float64
    ) -> MultiHeadPotential:
        """The architecture described by :meth:`config` (untrained weights)."""
        coulomb = config.get("coulomb")
        dispersion = config.get("dispersion")
        return cls(
            species=config["species"],
            heads=config["heads"],
            hidden_sizes=config["hidden_sizes"],
            aev_parameters=AEVParameters.from_dict(config["aev_parameters"]),
            dtype=dtype,
            charge_hidden_sizes=config.get("charge_hidden_sizes"),
            coulomb=None if coulomb is None else CoulombParameters(**coulomb),
            dispersion_functional=None if dispersion is None else dispersion["functional"],
            dispersion_cutoff_angstrom=8.0
            if dispersion is None
            else float(dispersion["cutoff_angstrom"]),
        )


@dataclass(frozen=True)
class StructureEvaluation:
    """Prediction of one head for one structure.

    ``gradient_hartree_per_angstrom`` is dE/dx (force = −gradient); ``charges_e`` is
    None when the model has no charge network.
    """

    energy_hartree: float
    gradient_hartree_per_angstrom: np.ndarray  # (N, 3)
    charges_e: np.ndarray | None  # (N,)


def evaluate_structure(
    model: MultiHeadPotential,
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    cell_angstrom: np.ndarray | None,
    pbc: Sequence[bool],
    head: str,
    *,
    total_charge: float = 0.0,
) -> StructureEvaluation:
    """Energy, gradient and (if the model predicts them) charges of one structure.

    Parameters
    ----------
    model
        A trained potential.
    numbers, positions_angstrom, cell_angstrom, pbc
        The structure; ``cell_angstrom`` rows are lattice vectors (ignored where
        ``pbc`` is all False; may be None then).
    head
        Level of theory, one of ``model.heads``.
    total_charge
        Total charge (e) the predicted partial charges sum to.

    Raises
    ------
    UnknownHeadError
        ``head`` is not one of the model's heads.
    UnknownElementError
        The structure holds an element the model was not trained on.
    """
    index = model.head_index(head)
    graph = model.graph(numbers, positions_angstrom, cell_angstrom, pbc, total_charge)
    batch = collate([graph], model.species, model.dtype, requires_grad=True, device=model.device)
    output = model(batch)
    energy = output.energy_hartree[0, index]
    (gradient,) = torch.autograd.grad(energy, batch.positions_angstrom)
    charges = None if output.charges_e is None else output.charges_e.detach().cpu().numpy()
    return StructureEvaluation(float(energy.detach()), gradient.detach().cpu().numpy(), charges)


def energy_and_gradient(
    model: MultiHeadPotential,
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    cell_angstrom: np.ndarray | None,
    pbc: Sequence[bool],
    head: str,
    *,
    total_charge: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Energy (Hartree) and gradient dE/dx (N, 3, Hartree/Å) of one structure."""
    result = evaluate_structure(
        model, numbers, positions_angstrom, cell_angstrom, pbc, head, total_charge=total_charge
    )
    return result.energy_hartree, result.gradient_hartree_per_angstrom
