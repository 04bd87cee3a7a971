"""ANI-style atomic environment vectors (AEVs), differentiable w.r.t. positions.

Radial terms (Gaussian shells × cosine cutoff, per neighbour element) and angular
terms (ANI angular symmetry functions, per unordered neighbour-element pair), after
Smith, Isayev & Roitberg (ANI-1). Neighbour pairs and periodic image shifts are
found in numpy outside autograd; distances are recomputed in torch from positions
plus constant shift vectors, so gradients flow to the positions.

Units: Å for positions, cell, cutoffs and shifts; Å⁻² for Gaussian widths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from ase.neighborlist import primitive_neighbor_list

_ANGULAR_TERM_FLOOR = 1e-96


@dataclass(frozen=True)
class AEVParameters:
    """Radial and angular AEV hyperparameters (ANI-1x defaults, radial cutoff 5.2 Å)."""

    radial_cutoff_angstrom: float = 5.2
    radial_eta_per_angstrom2: float = 16.0
    radial_shifts_angstrom: tuple[float, ...] = tuple(0.9 + 0.26875 * k for k in range(16))
    angular_cutoff_angstrom: float = 3.5
    angular_eta_per_angstrom2: float = 8.0
    angular_zeta: float = 32.0
    angular_shifts_angstrom: tuple[float, ...] = (0.9, 1.55, 2.2, 2.85)
    angle_sections: int = 8

    @property
    def angle_shifts_radian(self) -> tuple[float, ...]:
        width = math.pi / self.angle_sections
        return tuple(width * (k + 0.5) for k in range(self.angle_sections))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AEVParameters:
        values = dict(data)
        for key in ("radial_shifts_angstrom", "angular_shifts_angstrom"):
            values[key] = tuple(float(v) for v in values[key])  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class StructureGraph:
    """Neighbour pairs (within the radial cutoff) and angular triplets of one structure.

    Pure numpy, computed once per structure and geometry; ``collate`` joins many.
    """

    numbers: np.ndarray  # (N,)
    positions_angstrom: np.ndarray  # (N, 3)
    pair_i: np.ndarray  # (P,) centre atom
    pair_j: np.ndarray  # (P,) neighbour atom
    pair_shift_angstrom: np.ndarray  # (P, 3) r_ij = x_j - x_i + shift
    triplet_pair_a: np.ndarray  # (T,) pair indices sharing a centre, within the angular cutoff
    triplet_pair_b: np.ndarray  # (T,)


@dataclass
class AtomsBatch:
    """Flat batch of structures (molecules and periodic cells mixed) as torch tensors."""

    species_index: torch.Tensor  # (A,) index into the model's species list
    positions_angstrom: torch.Tensor  # (A, 3), may require grad
    structure_index: torch.Tensor  # (A,) which structure each atom belongs to
    n_atoms: torch.Tensor  # (B,) atoms per structure
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    pair_shift_angstrom: torch.Tensor
    triplet_pair_a: torch.Tensor
    triplet_pair_b: torch.Tensor

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.numel())


def build_structure_graph(
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    cell_angstrom: np.ndarray | None,
    pbc: Sequence[bool],
    parameters: AEVParameters,
) -> StructureGraph:
    """Neighbour pairs with image shifts and angular triplets of one structure."""
    positions = np.asarray(positions_angstrom, dtype=np.float64)
    cell = np.zeros((3, 3)) if cell_angstrom is None else np.asarray(cell_angstrom, float)
    pbc_flags = np.asarray(pbc, dtype=bool)
    if pbc_flags.any() and abs(np.linalg.det(cell)) < 1e-8:
        raise ValueError(f"periodic structure (pbc={tuple(pbc_flags)}) needs a non-singular cell")
    i, j, shifts = primitive_neighbor_list(
        "ijS", pbc_flags, cell, positions, parameters.radial_cutoff_angstrom
    )
    shift_angstrom = shifts.astype(np.float64) @ cell
    distances = np.linalg.norm(positions[j] - positions[i] + shift_angstrom, axis=1)
    triplet_a, triplet_b = _triplets(i, distances < parameters.angular_cutoff_angstrom)
    return StructureGraph(
        numbers=np.asarray(numbers, dtype=np.int64),
        positions_angstrom=positions,
        pair_i=i.astype(np.int64),
        pair_j=j.astype(np.int64),
        pair_shift_angstrom=shift_angstrom,
        triplet_pair_a=triplet_a,
        triplet_pair_b=triplet_b,
    )


def _triplets(pair_i: np.ndarray, angular: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs of angular-cutoff pairs that share a centre atom."""
    candidates = np.flatnonzero(angular)
    candidates = candidates[np.argsort(pair_i[candidates], kind="stable")]
    _, starts, counts = np.unique(pair_i[candidates], return_index=True, return_counts=True)
    first, second = [], []
    for start, count in zip(starts, counts, strict=True):
        a, b = np.triu_indices(int(count), k=1)
        first.append(candidates[start + a])
        second.append(candidates[start + b])
    if not first:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(first).astype(np.int64), np.concatenate(second).astype(np.int64)


def collate(
    graphs: Sequence[StructureGraph],
    species: Sequence[int],
    dtype: torch.dtype = torch.float64,
    requires_grad: bool = False,
) -> AtomsBatch:
    """Join structure graphs into one flat batch, offsetting atom and pair indices."""
    lookup = {int(z): k for k, z in enumerate(species)}
    unknown = sorted({int(z) for g in graphs for z in g.numbers} - set(lookup))
    if unknown:
        raise ValueError(
            f"atomic numbers {unknown} are not among the model species {list(species)}"
        )
    atom_offsets = np.cumsum([0] + [len(g.numbers) for g in graphs])
    pair_offsets = np.cumsum([0] + [len(g.pair_i) for g in graphs])

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays) if arrays else np.empty(0, np.int64)

    positions = torch.as_tensor(
        np.concatenate([g.positions_angstrom for g in graphs]), dtype=dtype
    ).requires_grad_(requires_grad)
    return AtomsBatch(
        species_index=torch.as_tensor(
            [lookup[int(z)] for g in graphs for z in g.numbers], dtype=torch.long
        ),
        positions_angstrom=positions,
        structure_index=torch.as_tensor(
            np.repeat(np.arange(len(graphs)), [len(g.numbers) for g in graphs])
        ),
        n_atoms=torch.as_tensor([len(g.numbers) for g in graphs]),
        pair_i=torch.as_tensor(
            cat([g.pair_i + o for g, o in zip(graphs, atom_offsets[:-1], strict=True)])
        ),
        pair_j=torch.as_tensor(
            cat([g.pair_j + o for g, o in zip(graphs, atom_offsets[:-1], strict=True)])
        ),
        pair_shift_angstrom=torch.as_tensor(
            np.concatenate([g.pair_shift_angstrom for g in graphs]), dtype=dtype
        ),
        triplet_pair_a=torch.as_tensor(
            cat([g.triplet_pair_a + o for g, o in zip(graphs, pair_offsets[:-1], strict=True)])
        ),
        triplet_pair_b=torch.as_tensor(
            cat([g.triplet_pair_b + o for g, o in zip(graphs, pair_offsets[:-1], strict=True)])
        ),
    )


def _cosine_cutoff(distance: torch.Tensor, cutoff: float) -> torch.Tensor:
    return torch.where(distance < cutoff, 0.5 * torch.cos(math.pi * distance / cutoff) + 0.5, 0.0)


class AEVComputer(torch.nn.Module):
    """Per-atom AEV: [radial per species | angular per unordered species pair].

    Output width is ``S * n_radial + S(S+1)/2 * n_angular_shifts * angle_sections``
    for S species.
    """

    radial_shifts: torch.Tensor
    angular_shifts: torch.Tensor
    angle_shifts: torch.Tensor
    pair_index: torch.Tensor

    def __init__(self, n_species: int, parameters: AEVParameters | None = None) -> None:
        super().__init__()
        self.parameters_ = parameters or AEVParameters()
        self.n_species = int(n_species)
        p = self.parameters_
        self.register_buffer("radial_shifts", torch.tensor(p.radial_shifts_angstrom))
        self.register_buffer("angular_shifts", torch.tensor(p.angular_shifts_angstrom))
        self.register_buffer("angle_shifts", torch.tensor(p.angle_shifts_radian))
        # Unordered species pair (s, t) -> column block, symmetric.
        pair_index = torch.zeros(n_species, n_species, dtype=torch.long)
        rows, cols = torch.triu_indices(n_species, n_species)
        pair_index[rows, cols] = torch.arange(rows.numel())
        pair_index[cols, rows] = torch.arange(rows.numel())
        self.register_buffer("pair_index", pair_index)
        self.n_pairs = int(rows.numel())

    @property
    def radial_length(self) -> int:
        return self.n_species * len(self.parameters_.radial_shifts_angstrom)

    @property
    def angular_length(self) -> int:
        p = self.parameters_
        return self.n_pairs * len(p.angular_shifts_angstrom) * p.angle_sections

    @property
    def aev_length(self) -> int:
        return self.radial_length + self.angular_length

    def forward(self, batch: AtomsBatch) -> torch.Tensor:
        """AEVs (A, aev_length) of every atom in the batch."""
        positions = batch.positions_angstrom
        vectors = positions[batch.pair_j] - positions[batch.pair_i] + batch.pair_shift_angstrom
        distances = vectors.norm(dim=1)
        radial = self._radial(batch, distances)
        angular = self._angular(batch, vectors, distances)
        return torch.cat([radial, angular], dim=1)

    def _radial(self, batch: AtomsBatch, distances: torch.Tensor) -> torch.Tensor:
        p = self.parameters_
        n_atoms, n_shells = batch.species_index.numel(), self.radial_shifts.numel()
        terms = (
            0.25
            * torch.exp(
                -p.radial_eta_per_angstrom2 * (distances[:, None] - self.radial_shifts) ** 2
            )
            * _cosine_cutoff(distances, p.radial_cutoff_angstrom)[:, None]
        )
        slot = batch.pair_i * self.n_species + batch.species_index[batch.pair_j]
        out = terms.new_zeros(n_atoms * self.n_species, n_shells)
        out = out.index_add(0, slot, terms)
        return out.reshape(n_atoms, self.n_species * n_shells)

    def _angular(
        self, batch: AtomsBatch, vectors: torch.Tensor, distances: torch.Tensor
    ) -> torch.Tensor:
        p = self.parameters_
        n_atoms = batch.species_index.numel()
        a, b = batch.triplet_pair_a, batch.triplet_pair_b
        r_a, r_b = distances[a], distances[b]
        cos_angle = (vectors[a] * vectors[b]).sum(1) / (r_a * r_b)
        # ANI uses acos(0.95 cos θ) to keep the derivative finite at θ = 0, π; expand
        # cos(θ' - θ_s) = cos θ' cos θ_s + sin θ' sin θ_s instead of calling acos.
        cos_shrunk = 0.95 * cos_angle
        sin_shrunk = torch.sqrt(1.0 - cos_shrunk**2)
        cos_difference = cos_shrunk[:, None] * torch.cos(self.angle_shifts) + sin_shrunk[
            :, None
        ] * torch.sin(self.angle_shifts)
        # Floor the base so base**zeta >= 1e-96 (zero for all purposes): smaller values
        # underflow to subnormal floats, which slow CPU autograd ~10x.
        floor = _ANGULAR_TERM_FLOOR ** (1.0 / p.angular_zeta)
        base = torch.clamp((1.0 + cos_difference) / 2.0, min=floor)
        angular_factor = 2.0 * base**p.angular_zeta
        radial_factor = torch.exp(
            -p.angular_eta_per_angstrom2 * ((r_a + r_b)[:, None] / 2.0 - self.angular_shifts) ** 2
        )
        cutoff = _cosine_cutoff(r_a, p.angular_cutoff_angstrom) * _cosine_cutoff(
            r_b, p.angular_cutoff_angstrom
        )
        terms = (radial_factor[:, :, None] * angular_factor[:, None, :]).flatten(1)
        terms = terms * cutoff[:, None]
        species = batch.species_index
        pair_block = self.pair_index[species[batch.pair_j[a]], species[batch.pair_j[b]]]
        slot = batch.pair_i[a] * self.n_pairs + pair_block
        out = terms.new_zeros(n_atoms * self.n_pairs, terms.shape[1])
        out = out.index_add(0, slot, terms)
        return out.reshape(n_atoms, self.angular_length)
