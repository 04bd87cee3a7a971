"""ANI atomic environment vectors (torchani's AEV code) over flat, mixed batches.

torchani's ``AEVComputer`` takes one cell and one ``pbc`` for a whole padded batch,
so molecules and periodic cells of different shapes cannot share its own
neighbour list. Here every structure gets its own neighbour list (vesin or ASE, any cell,
any mix of periodic directions) once, in numpy; batches are flat (no padding:
atoms of all structures in one row, pair indices offset) and the AEVs come from
``AEVComputer.compute_from_neighbors`` with difference vectors recomputed in
torch from positions and constant image shifts, so gradients flow to positions
(and to the cell, for stress).

Conventions (torchani's): a pair ``(a, b)`` appears once (a half list);
``diff = x_a - x_b + shift`` with ``shift = pair_cell_shift @ cell``.
Units: Å for positions, cell, cutoffs; Å⁻² for Gaussian widths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

# torchani warns at import when its optional CUDA extensions are not compiled.
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
from torchani.aev import AEVComputer
from torchani.neighbors import Neighbors

from interphase.models.neighbours import neighbour_pairs


class UnknownElementError(ValueError):
    """A structure holds an element the model was not trained on."""


@dataclass(frozen=True)
class AEVParameters:
    """ANI-1x-style AEV hyperparameters (torchani ``AEVComputer.like_1x``).

    Radial shells cover ``[radial_start, radial_cutoff)`` linearly, angular
    shells ``[angular_start, angular_cutoff)``; cosine cutoff function.
    """

    radial_cutoff_angstrom: float = 5.2
    radial_eta_per_angstrom2: float = 16.0
    radial_start_angstrom: float = 0.9
    radial_shells: int = 16
    angular_cutoff_angstrom: float = 3.5
    angular_eta_per_angstrom2: float = 8.0
    angular_zeta: float = 32.0
    angular_start_angstrom: float = 0.9
    angular_shells: int = 4
    angle_sections: int = 8

    def __post_init__(self) -> None:
        if not 0 < self.angular_cutoff_angstrom < self.radial_cutoff_angstrom:
            raise ValueError(
                f"need 0 < angular cutoff ({self.angular_cutoff_angstrom} Å) < radial "
                f"cutoff ({self.radial_cutoff_angstrom} Å)"
            )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AEVParameters:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AEV parameters {unknown}; known: {sorted(known)}")
        return cls(**data)  # type: ignore[arg-type]

    def build(self, n_species: int) -> AEVComputer:
        """The torchani AEV computer for ``n_species`` elements."""
        return AEVComputer.like_1x(
            num_species=n_species,
            radial_start=self.radial_start_angstrom,
            radial_cutoff=self.radial_cutoff_angstrom,
            radial_eta=self.radial_eta_per_angstrom2,
            radial_num_shifts=self.radial_shells,
            angular_start=self.angular_start_angstrom,
            angular_cutoff=self.angular_cutoff_angstrom,
            angular_eta=self.angular_eta_per_angstrom2,
            angular_zeta=self.angular_zeta,
            angular_num_shifts=self.angular_shells,
            angular_num_sections=self.angle_sections,
        )


@dataclass
class StructureGraph:
    """One structure with its half neighbour list within ``cutoff_angstrom`` (numpy)."""

    numbers: np.ndarray  # (N,)
    positions_angstrom: np.ndarray  # (N, 3)
    cell_angstrom: np.ndarray  # (3, 3) rows are lattice vectors; zeros if molecular
    pair_a: np.ndarray  # (P,)
    pair_b: np.ndarray  # (P,)
    pair_cell_shift: np.ndarray  # (P, 3) integers: diff = x_a - x_b + shift @ cell
    cutoff_angstrom: float
    total_charge_e: float = 0.0


@dataclass
class AtomsBatch:
    """Flat batch of structures (molecules and periodic cells mixed) as torch tensors."""

    species_index: torch.Tensor  # (A,) index into the model's species list
    positions_angstrom: torch.Tensor  # (A, 3), may require grad
    structure_index: torch.Tensor  # (A,) structure of each atom
    n_atoms: torch.Tensor  # (B,)
    cell_angstrom: torch.Tensor  # (B, 3, 3), zeros for molecules
    total_charge_e: torch.Tensor  # (B,)
    pair_index: torch.Tensor  # (2, P) atom indices into the flat batch
    pair_cell_shift: torch.Tensor  # (P, 3) integer-valued, model dtype

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.numel())

    def to(self, device: torch.device | str) -> AtomsBatch:
        """A copy on ``device`` (gradient tracking of the positions kept)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device)
        batch = AtomsBatch(**moved)
        if self.positions_angstrom.requires_grad and not batch.positions_angstrom.is_leaf:
            batch.positions_angstrom = batch.positions_angstrom.detach().requires_grad_(True)
        return batch

    def difference_vectors(self, cell_angstrom: torch.Tensor | None = None) -> torch.Tensor:
        """``x_a - x_b + shift`` of every pair (P, 3), differentiable w.r.t. positions."""
        cell = self.cell_angstrom if cell_angstrom is None else cell_angstrom
        positions = self.positions_angstrom
        a, b = self.pair_index
        pair_cell = cell[self.structure_index[a]]  # (P, 3, 3)
        shift = torch.einsum("pk,pkl->pl", self.pair_cell_shift, pair_cell)
        return positions[a] - positions[b] + shift


def build_structure_graph(
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    cell_angstrom: np.ndarray | None,
    pbc: Sequence[bool],
    cutoff_angstrom: float,
    total_charge_e: float = 0.0,
) -> StructureGraph:
    """Half neighbour list of one structure (periodic images included) within a cutoff.

    Raises
    ------
    ValueError
        A periodic direction without a non-singular cell, or shapes that disagree.
    """
    positions = np.asarray(positions_angstrom, dtype=np.float64)
    numbers = np.asarray(numbers, dtype=np.int64)
    if positions.shape != (len(numbers), 3):
        raise ValueError(
            f"positions_angstrom has shape {positions.shape}; expected ({len(numbers)}, 3)"
        )
    pbc_flags = np.asarray(pbc, dtype=bool)
    cell = np.zeros((3, 3)) if cell_angstrom is None else np.asarray(cell_angstrom, float)
    if pbc_flags.any() and abs(np.linalg.det(cell)) < 1e-8:
        raise ValueError(f"periodic structure (pbc={tuple(pbc_flags)}) needs a non-singular cell")
    if not pbc_flags.any():
        cell = np.zeros((3, 3))
    i, j, shifts = neighbour_pairs(pbc_flags, cell, positions, cutoff_angstrom)
    # The full list has both (i, j, S) and (j, i, -S); keep i < j, and for an atom and its
    # own image the shift whose first non-zero component is positive.
    first = np.where(
        shifts[:, 0] != 0, shifts[:, 0], np.where(shifts[:, 1] != 0, shifts[:, 1], shifts[:, 2])
    )
    keep = (i < j) | ((i == j) & (first > 0))
    return StructureGraph(
        numbers=numbers,
        positions_angstrom=positions,
        cell_angstrom=cell,
        pair_a=i[keep].astype(np.int64),
        pair_b=j[keep].astype(np.int64),
        # ASE's vector is x_j - x_i + S @ cell; torchani's is x_a - x_b + shift.
        pair_cell_shift=-shifts[keep].astype(np.float64),
        cutoff_angstrom=float(cutoff_angstrom),
        total_charge_e=float(total_charge_e),
    )


def species_indices(numbers: np.ndarray, species: Sequence[int]) -> np.ndarray:
    """Index of each atomic number in ``species``; :class:`UnknownElementError` if absent."""
    lookup = np.full(max(max(species), int(np.max(numbers, initial=0))) + 1, -1, dtype=np.int64)
    lookup[np.asarray(species)] = np.arange(len(species))
    indices = lookup[np.asarray(numbers, dtype=np.int64)]
    if (indices < 0).any():
        unknown = sorted({int(z) for z in np.asarray(numbers)[indices < 0]})
        raise UnknownElementError(
            f"atomic numbers {unknown} are not among the model's elements {list(species)}; "
            "train a model on data containing them"
        )
    return indices


def collate(
    graphs: Sequence[StructureGraph],
    species: Sequence[int],
    dtype: torch.dtype = torch.float64,
    requires_grad: bool = False,
    device: torch.device | str = "cpu",
) -> AtomsBatch:
    """Join structure graphs into one flat batch, offsetting atom indices."""
    sizes = np.array([len(g.numbers) for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    numbers = np.concatenate([g.numbers for g in graphs])
    pairs = np.concatenate(
        [np.stack([g.pair_a + o, g.pair_b + o]) for g, o in zip(graphs, offsets, strict=True)],
        axis=1,
    )

    def tensor(values: np.ndarray, kind: torch.dtype = dtype) -> torch.Tensor:
        return torch.as_tensor(values, dtype=kind).to(device)

    positions = tensor(np.concatenate([g.positions_angstrom for g in graphs]))
    return AtomsBatch(
        species_index=tensor(species_indices(numbers, species), torch.long),
        positions_angstrom=positions.requires_grad_(requires_grad),
        structure_index=tensor(np.repeat(np.arange(len(graphs)), sizes), torch.long),
        n_atoms=tensor(sizes, torch.long),
        cell_angstrom=tensor(np.stack([g.cell_angstrom for g in graphs])),
        total_charge_e=tensor(np.array([g.total_charge_e for g in graphs])),
        pair_index=tensor(pairs, torch.long),
        pair_cell_shift=tensor(np.concatenate([g.pair_cell_shift for g in graphs])),
    )


def within_cutoff(
    pair_index: torch.Tensor, diff_vectors: torch.Tensor, cutoff_angstrom: float
) -> Neighbors:
    """The pairs closer than ``cutoff_angstrom`` as torchani ``Neighbors``."""
    distances = diff_vectors.norm(dim=-1)
    keep = (distances <= cutoff_angstrom).nonzero().flatten()
    return Neighbors(
        pair_index.index_select(1, keep),
        distances.index_select(0, keep),
        diff_vectors.index_select(0, keep),
    )
