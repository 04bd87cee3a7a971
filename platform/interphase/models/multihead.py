"""Multi-head neural network potential (paper 000, eq. 1, without charges yet).

``E_head = Σ_i [ scale_head · NN_head,Z_i(AEV_i) + e_self(head, Z_i) ]``

Each element has one MLP whose hidden layers are shared by all heads (levels of
theory); each head has its own linear output row. Self-energies per head and
element are buffers fitted by least squares to training energies, and the network
learns the residual in units of a per-head energy scale. Energies in Hartree,
positions in Å, gradients in Hartree/Å (dE/dx).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase.data import chemical_symbols

from interphase.models.descriptors import (
    AEVComputer,
    AEVParameters,
    AtomsBatch,
    build_structure_graph,
    collate,
)


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

    def forward(self, aev: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(aev))


class MultiHeadPotential(torch.nn.Module):
    """Per-element networks with shared hidden layers and one output per head.

    Parameters
    ----------
    species
        Atomic numbers the model handles, e.g. ``[1, 3, 6, 8]``.
    heads
        Level-of-theory keys, one output each.
    hidden_sizes
        Widths of the shared hidden layers of every element network.
    aev_parameters
        Descriptor settings (radial cutoff 5.2 Å by default).
    dtype
        Parameter and buffer dtype.
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
    ) -> None:
        super().__init__()
        if len(set(heads)) != len(heads) or not heads:
            raise ValueError(f"heads must be non-empty and unique; got {list(heads)}")
        self.species = [int(z) for z in sorted(set(species))]
        self.heads = list(heads)
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        self.aev = AEVComputer(len(self.species), aev_parameters)
        self.element_networks = torch.nn.ModuleList(
            ElementNetwork(self.aev.aev_length, self.hidden_sizes, len(self.heads))
            for _ in self.species
        )
        self.register_buffer("self_energy_hartree", torch.zeros(len(self.heads), len(self.species)))
        self.register_buffer("energy_scale_hartree", torch.ones(len(self.heads)))
        # float64 by default: total energies of hundreds of Hartree lose meV in float32.
        self.to(dtype)

    @property
    def aev_parameters(self) -> AEVParameters:
        return self.aev.parameters_

    @property
    def dtype(self) -> torch.dtype:
        return self.self_energy_hartree.dtype

    def head_index(self, head: str) -> int:
        if head not in self.heads:
            raise KeyError(f"head {head!r} is not one of this model's heads {self.heads}")
        return self.heads.index(head)

    def forward(self, batch: AtomsBatch) -> dict[str, torch.Tensor]:
        """Energy (B,) in Hartree of every structure in the batch, per head."""
        aev = self.aev(batch)
        dtype = aev.dtype
        atomic = aev.new_zeros(aev.shape[0], len(self.heads))
        for index, network in enumerate(self.element_networks):
            mask = batch.species_index == index
            if bool(mask.any()):
                atomic = atomic.index_put((mask.nonzero()[:, 0],), network(aev[mask]))
        atomic = atomic * self.energy_scale_hartree.to(dtype)
        atomic = atomic + self.self_energy_hartree.to(dtype).T[batch.species_index]
        energies = atomic.new_zeros(batch.n_structures, len(self.heads))
        energies = energies.index_add(0, batch.structure_index, atomic)
        return {head: energies[:, k] for k, head in enumerate(self.heads)}

    def set_energy_reference(
        self, self_energy_hartree: np.ndarray, energy_scale_hartree: np.ndarray
    ) -> None:
        """Set self-energies (heads, species) and per-head residual scales (heads,)."""
        self.self_energy_hartree.copy_(torch.as_tensor(self_energy_hartree))
        self.energy_scale_hartree.copy_(torch.as_tensor(energy_scale_hartree))

    def config(self) -> dict[str, object]:
        """Everything needed to rebuild the architecture (plus readable self-energies)."""
        self_energies = self.self_energy_hartree.cpu().numpy()
        return {
            "species": list(self.species),
            "heads": list(self.heads),
            "hidden_sizes": list(self.hidden_sizes),
            "aev_parameters": self.aev_parameters.to_dict(),
            "self_energies_hartree": {
                head: {
                    chemical_symbols[z]: float(self_energies[h, s])
                    for s, z in enumerate(self.species)
                }
                for h, head in enumerate(self.heads)
            },
        }

    @classmethod
    def from_config(cls, config: dict[str, object]) -> MultiHeadPotential:
        return cls(
            species=config["species"],  # type: ignore[arg-type]
            heads=config["heads"],  # type: ignore[arg-type]
            hidden_sizes=config["hidden_sizes"],  # type: ignore[arg-type]
            aev_parameters=AEVParameters.from_dict(config["aev_parameters"]),  # type: ignore[arg-type]
        )


def energy_and_gradient(
    model: MultiHeadPotential,
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    cell_angstrom: np.ndarray | None,
    pbc: Sequence[bool],
    head: str,
) -> tuple[float, np.ndarray]:
    """Energy (Hartree) and gradient dE/dx (N, 3, Hartree/Å) of one structure by autograd."""
    graph = build_structure_graph(
        numbers, positions_angstrom, cell_angstrom, pbc, model.aev_parameters
    )
    batch = collate([graph], model.species, dtype=model.dtype, requires_grad=True)
    energy = model(batch)[head][0]
    (gradient,) = torch.autograd.grad(energy, batch.positions_angstrom)
    return float(energy.detach()), gradient.detach().cpu().numpy()


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
    """
    model.head_index(head)
    energy, gradient = energy_and_gradient(
        model, numbers, positions_angstrom, cell_angstrom, pbc, head
    )
    return StructureEvaluation(energy, gradient, None)
