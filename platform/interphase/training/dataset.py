"""Training examples, their neighbour lists and dense masked targets.

A missing label is NaN in the dense arrays and drops out of the loss. Energies
Hartree, gradients Hartree/Å (dE/dx), charges e.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from interphase.models.descriptors import (
    AtomsBatch,
    StructureGraph,
    build_structure_graph,
    collate,
)
from interphase.models.multihead import MultiHeadPotential

#: Floors of the target scales (Hartree per atom, Hartree/Å, e) for nearly constant data.
_MIN_ENERGY_SCALE = 1e-4
_MIN_GRADIENT_SCALE = 1e-4
_MIN_CHARGE_SCALE = 1e-2


class TrainingDataError(ValueError):
    """Training examples are inconsistent with each other or with the requested heads."""


@dataclass
class TrainingExample:
    """One structure with whatever labels it has; a missing label is masked."""

    numbers: np.ndarray  # (N,)
    positions_angstrom: np.ndarray  # (N, 3)
    cell_angstrom: np.ndarray | None  # (3, 3) rows are lattice vectors; None if molecular
    pbc: tuple[bool, bool, bool]
    energies_hartree: dict[str, float] = field(default_factory=dict)
    gradients_hartree_per_angstrom: dict[str, np.ndarray] = field(default_factory=dict)
    charges_e: np.ndarray | None = None  # (N,) reference partial charges
    total_charge_e: float = 0.0
    #: Energy-only targets predicted by a GP (never reference data).
    synthetic_energies_hartree: dict[str, float] = field(default_factory=dict)
    structure_id: int | None = None


@dataclass
class TrainingData:
    """Examples turned into neighbour lists and dense NaN-masked target arrays."""

    heads: list[str]
    species: list[int]
    graphs: list[StructureGraph]
    n_atoms: np.ndarray  # (n,)
    energies: np.ndarray  # (n, heads)
    synthetic: np.ndarray  # (n, heads)
    gradients: list[np.ndarray]  # per structure (heads, N, 3)
    charges: list[np.ndarray]  # per structure (N,)
    structure_ids: np.ndarray  # (n,), -1 where unknown

    def __len__(self) -> int:
        return len(self.graphs)

    def batch(
        self,
        indices: np.ndarray,
        model: MultiHeadPotential,
        *,
        requires_grad: bool,
        device: torch.device | str,
    ) -> tuple[AtomsBatch, BatchTargets]:
        """Collated inputs and targets of the structures ``indices``."""
        graphs = [self.graphs[i] for i in indices]
        inputs = collate(graphs, model.species, model.dtype, requires_grad, device)
        targets = BatchTargets.from_arrays(self, indices, model.dtype, device)
        return inputs, targets


@dataclass
class BatchTargets:
    """Targets of one batch as tensors (NaN where a label is missing)."""

    indices: np.ndarray  # (B,) positions in the TrainingData
    n_atoms: torch.Tensor  # (B,)
    energies: torch.Tensor  # (B, H)
    synthetic: torch.Tensor  # (B, H)
    gradients: torch.Tensor  # (H, A, 3)
    charges: torch.Tensor  # (A,)

    @classmethod
    def from_arrays(
        cls, data: TrainingData, indices: np.ndarray, dtype: torch.dtype, device: torch.device | str
    ) -> BatchTargets:
        def tensor(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, dtype=dtype).to(device)

        return cls(
            indices=np.asarray(indices),
            n_atoms=tensor(data.n_atoms[indices]),
            energies=tensor(data.energies[indices]),
            synthetic=tensor(data.synthetic[indices]),
            gradients=tensor(np.concatenate([data.gradients[i] for i in indices], axis=1)),
            charges=tensor(np.concatenate([data.charges[i] for i in indices])),
        )


def check_examples(
    examples: Sequence[TrainingExample], heads: Sequence[str], *, require_energies: bool = True
) -> None:
    """Raise :class:`TrainingDataError` naming the first inconsistent example."""
    if not examples:
        raise TrainingDataError("no training examples given")
    if not heads or len(set(heads)) != len(heads):
        raise TrainingDataError(f"heads must be non-empty and unique; got {list(heads)}")
    for k, ex in enumerate(examples):
        n = len(ex.numbers)
        where = f"example {k}" + (
            "" if ex.structure_id is None else f" (structure {ex.structure_id})"
        )
        if np.shape(ex.positions_angstrom) != (n, 3):
            raise TrainingDataError(
                f"{where}: positions_angstrom has shape {np.shape(ex.positions_angstrom)}, "
                f"expected ({n}, 3)"
            )
        for head, gradient in ex.gradients_hartree_per_angstrom.items():
            if head in heads and np.shape(gradient) != (n, 3):
                raise TrainingDataError(
                    f"{where}: gradient of head {head!r} has shape {np.shape(gradient)}, "
                    f"expected ({n}, 3)"
                )
        if ex.charges_e is not None and np.shape(ex.charges_e) != (n,):
            raise TrainingDataError(
                f"{where}: charges_e has shape {np.shape(ex.charges_e)}, expected ({n},)"
            )
    for head in heads if require_energies else ():
        if not any(
            head in ex.energies_hartree or head in ex.synthetic_energies_hartree for ex in examples
        ):
            raise TrainingDataError(
                f"head {head!r} has no energy label in any example; drop it from the heads"
            )


def prepare(
    examples: Sequence[TrainingExample],
    heads: Sequence[str],
    pair_cutoff_angstrom: float,
    *,
    require_energies: bool = True,
) -> TrainingData:
    """Neighbour lists (at the model's pair cutoff) and dense targets of ``examples``.

    ``require_energies=False`` (evaluation) allows heads without any energy label.
    """
    heads = list(heads)
    check_examples(examples, heads, require_energies=require_energies)
    graphs = [
        build_structure_graph(
            ex.numbers,
            ex.positions_angstrom,
            ex.cell_angstrom,
            ex.pbc,
            pair_cutoff_angstrom,
            ex.total_charge_e,
        )
        for ex in examples
    ]

    def energy_table(attribute: str) -> np.ndarray:
        return np.array(
            [[getattr(ex, attribute).get(h, np.nan) for h in heads] for ex in examples], float
        ).reshape(len(examples), len(heads))

    gradients = []
    for ex in examples:
        block = np.full((len(heads), len(ex.numbers), 3), np.nan)
        for k, head in enumerate(heads):
            if head in ex.gradients_hartree_per_angstrom:
                block[k] = ex.gradients_hartree_per_angstrom[head]
        gradients.append(block)
    charges = [
        np.full(len(ex.numbers), np.nan)
        if ex.charges_e is None
        else np.asarray(ex.charges_e, float)
        for ex in examples
    ]
    return TrainingData(
        heads=heads,
        species=sorted({int(z) for ex in examples for z in ex.numbers}),
        graphs=graphs,
        n_atoms=np.array([len(ex.numbers) for ex in examples]),
        energies=energy_table("energies_hartree"),
        synthetic=energy_table("synthetic_energies_hartree"),
        gradients=gradients,
        charges=charges,
        structure_ids=np.array(
            [-1 if ex.structure_id is None else ex.structure_id for ex in examples], np.int64
        ),
    )


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split; at least one training structure."""
    order = np.random.default_rng(seed).permutation(n)
    n_validation = min(round(validation_fraction * n), n - 1)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def epoch_batches(
    train_indices: np.ndarray, epoch_size: int | None, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of one epoch: ``epoch_size`` structures from successive shuffles."""
    size = len(train_indices) if epoch_size is None else epoch_size
    passes = -(-size // len(train_indices))
    order = np.concatenate([rng.permutation(train_indices) for _ in range(passes)])[:size]
    return [order[start : start + batch_size] for start in range(0, size, batch_size)]


@dataclass(frozen=True)
class TargetScales:
    """Per-head energy (Hartree/atom) and gradient (Hartree/Å) spreads, charge spread (e)."""

    self_energy_hartree: np.ndarray  # (heads, species)
    energy_hartree: np.ndarray  # (heads,)
    gradient_hartree_per_angstrom: np.ndarray  # (heads,)
    charge_e: float


def fit_target_scales(
    data: TrainingData, train_indices: np.ndarray, baseline: np.ndarray | None = None
) -> TargetScales:
    """Least-squares self-energies per head and element, and the residual spreads.

    Reference energies are used where a head has them, else its synthetic ones.
    ``baseline`` (n, heads): energies the model already predicts without
    self-energies (untrained networks, Coulomb, dispersion); the self-energies are
    fitted to what is left, so training starts without a systematic offset.
    """
    counts = np.array(
        [[np.sum(g.numbers == z) for z in data.species] for g in data.graphs], dtype=float
    )
    n_heads = len(data.heads)
    self_energy = np.zeros((n_heads, len(data.species)))
    energy_scale = np.full(n_heads, _MIN_ENERGY_SCALE)
    gradient_scale = np.full(n_heads, _MIN_GRADIENT_SCALE)
    for h in range(n_heads):
        table = (
            data.energies if np.isfinite(data.energies[train_indices, h]).any() else data.synthetic
        )
        rows = train_indices[np.isfinite(table[train_indices, h])]
        if rows.size:
            target = table[rows, h] - (0.0 if baseline is None else baseline[rows, h])
            solution, *_ = np.linalg.lstsq(counts[rows], target, rcond=None)
            self_energy[h] = solution
            residual = (target - counts[rows] @ solution) / data.n_atoms[rows]
            energy_scale[h] = max(float(np.sqrt(np.mean(residual**2))), _MIN_ENERGY_SCALE)
        components = np.concatenate([data.gradients[i][h].ravel() for i in train_indices])
        components = components[np.isfinite(components)]
        if components.size:
            gradient_scale[h] = max(float(np.sqrt(np.mean(components**2))), _MIN_GRADIENT_SCALE)
    charges = np.concatenate([data.charges[i] for i in train_indices])
    charges = charges[np.isfinite(charges)]
    charge_scale = (
        max(float(np.sqrt(np.mean(charges**2))), _MIN_CHARGE_SCALE) if charges.size else 1.0
    )
    return TargetScales(self_energy, energy_scale, gradient_scale, charge_scale)
