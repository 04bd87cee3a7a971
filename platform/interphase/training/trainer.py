"""Training of the multi-head potential on energies and gradients with masked labels.

Loss per head h (summed over heads), each term over the structures that carry
that label only (a missing label contributes nothing):

    mean_s [((E_pred - E_ref) / N_s / scale_h)²]
    + force_weight · mean_atoms [|g_pred - g_ref|² / scale_h²]   (scale_h in Hartree, per Å)

where scale_h is the per-head per-atom energy spread after self-energies, so the
loss is dimensionless and heads weigh alike. Energies Hartree, positions Å,
gradients Hartree/Å (dE/dx).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from interphase.models import artifact
from interphase.models.descriptors import (
    AEVParameters,
    AtomsBatch,
    StructureGraph,
    build_structure_graph,
    collate,
)
from interphase.models.multihead import MultiHeadPotential

_FORMAT_VERSION = 1
#: Floor of the per-head energy scale (Hartree per atom) when the data barely vary.
_MIN_ENERGY_SCALE_HARTREE = 1e-4


class TrainingDataError(ValueError):
    """Training examples are inconsistent with each other or with the requested heads."""


@dataclass
class TrainingExample:
    """One structure with its labels by head; a head without a label is masked."""

    numbers: np.ndarray  # (N,)
    positions_angstrom: np.ndarray  # (N, 3)
    cell_angstrom: np.ndarray | None  # (3, 3) rows are lattice vectors; None if molecular
    pbc: tuple[bool, bool, bool]
    energies_hartree: dict[str, float] = field(default_factory=dict)
    gradients_hartree_per_angstrom: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TrainingConfig:
    """Hyperparameters of one training run (AdamW, fixed epochs)."""

    epochs: int = 100
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    force_weight: float = 1.0
    validation_fraction: float = 0.1
    seed: int = 0
    hidden_sizes: tuple[int, ...] = (64, 64)
    radial_cutoff_angstrom: float = 5.2
    angular_cutoff_angstrom: float = 3.5
    device: str = "cpu"


@dataclass
class HeadMetrics:
    """Mean absolute errors of one head; None where the split has no such label."""

    train_energy_mae_per_atom_hartree: float | None
    train_force_mae_hartree_per_angstrom: float | None
    validation_energy_mae_per_atom_hartree: float | None
    validation_force_mae_hartree_per_angstrom: float | None


@dataclass
class TrainingResult:
    model: MultiHeadPotential
    metrics: dict[str, HeadMetrics]
    loss_history: list[float]  # mean training loss per epoch (dimensionless)
    train_indices: np.ndarray
    validation_indices: np.ndarray
    config: TrainingConfig


@dataclass
class _Prepared:
    """Examples turned into neighbour graphs and dense label arrays."""

    graphs: list[StructureGraph]
    n_atoms: np.ndarray  # (n,)
    energies: np.ndarray  # (n, heads), NaN where missing
    gradients: list[np.ndarray]  # per example (heads, N, 3), NaN where missing


def train_multihead(
    examples: Sequence[TrainingExample],
    heads: Sequence[str],
    config: TrainingConfig | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainingResult:
    """Train a :class:`MultiHeadPotential` on masked energies and gradients.

    Parameters
    ----------
    examples
        Structures with whatever labels they have.
    heads
        Level-of-theory keys to train; labels under other keys are ignored.
    config
        Hyperparameters; defaults to :class:`TrainingConfig()`.
    progress
        Called after every epoch with the epoch number (from 1) and
        ``{"loss": mean training loss}``.

    Returns
    -------
    TrainingResult
        The trained model (eval mode), per-head MAEs on the train and validation
        splits, and the loss history. Same inputs and seed give the same result.
    """
    config = config or TrainingConfig()
    heads = list(heads)
    _check_examples(examples, heads)
    aev_parameters = AEVParameters(
        radial_cutoff_angstrom=config.radial_cutoff_angstrom,
        angular_cutoff_angstrom=config.angular_cutoff_angstrom,
    )
    data = _prepare(examples, heads, aev_parameters)
    train_idx, validation_idx = _split(len(examples), config)
    species = sorted({int(z) for ex in examples for z in ex.numbers})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = MultiHeadPotential(species, heads, config.hidden_sizes, aev_parameters)
        self_energy, scale = _fit_energy_reference(data, train_idx, species, len(heads))
        model.set_energy_reference(self_energy, scale)
        model.to(config.device)
        history = _optimise(model, data, train_idx, config, progress)
    model.eval()
    metrics = {
        head: HeadMetrics(
            *_mean_abs_errors(model, data, train_idx, k, config.device),
            *_mean_abs_errors(model, data, validation_idx, k, config.device),
        )
        for k, head in enumerate(heads)
    }
    return TrainingResult(model, metrics, history, train_idx, validation_idx, config)


def _check_examples(examples: Sequence[TrainingExample], heads: list[str]) -> None:
    if not examples:
        raise TrainingDataError("no training examples given")
    if not heads or len(set(heads)) != len(heads):
        raise TrainingDataError(f"heads must be non-empty and unique; got {heads}")
    for k, ex in enumerate(examples):
        n = len(ex.numbers)
        if np.shape(ex.positions_angstrom) != (n, 3):
            raise TrainingDataError(
                f"example {k}: positions_angstrom has shape {np.shape(ex.positions_angstrom)}, "
                f"expected ({n}, 3)"
            )
        for head, gradient in ex.gradients_hartree_per_angstrom.items():
            if head in heads and np.shape(gradient) != (n, 3):
                raise TrainingDataError(
                    f"example {k}: gradient of head {head!r} has shape {np.shape(gradient)}, "
                    f"expected ({n}, 3)"
                )
    for head in heads:
        if not any(head in ex.energies_hartree for ex in examples):
            raise TrainingDataError(
                f"head {head!r} has no energy label in any example; drop it from heads"
            )


def _prepare(
    examples: Sequence[TrainingExample], heads: list[str], parameters: AEVParameters
) -> _Prepared:
    graphs = [
        build_structure_graph(
            ex.numbers, ex.positions_angstrom, ex.cell_angstrom, ex.pbc, parameters
        )
        for ex in examples
    ]
    energies = np.array(
        [[ex.energies_hartree.get(h, np.nan) for h in heads] for ex in examples], float
    )
    gradients = []
    for ex in examples:
        block = np.full((len(heads), len(ex.numbers), 3), np.nan)
        for k, head in enumerate(heads):
            if head in ex.gradients_hartree_per_angstrom:
                block[k] = ex.gradients_hartree_per_angstrom[head]
        gradients.append(block)
    n_atoms = np.array([len(ex.numbers) for ex in examples])
    return _Prepared(graphs, n_atoms, energies, gradients)


def _split(n: int, config: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split; at least one training structure."""
    order = np.random.default_rng(config.seed).permutation(n)
    n_validation = min(round(config.validation_fraction * n), n - 1)
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def _fit_energy_reference(
    data: _Prepared, train_idx: np.ndarray, species: list[int], n_heads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares self-energies (heads, species) and per-atom residual scales (heads,)."""
    counts = np.array([[np.sum(g.numbers == z) for z in species] for g in data.graphs], dtype=float)
    self_energy = np.zeros((n_heads, len(species)))
    scale = np.full(n_heads, _MIN_ENERGY_SCALE_HARTREE)
    for h in range(n_heads):
        rows = train_idx[np.isfinite(data.energies[train_idx, h])]
        if rows.size == 0:
            continue
        solution, *_ = np.linalg.lstsq(counts[rows], data.energies[rows, h], rcond=None)
        self_energy[h] = solution
        residual = (data.energies[rows, h] - counts[rows] @ solution) / data.n_atoms[rows]
        scale[h] = max(float(np.sqrt(np.mean(residual**2))), _MIN_ENERGY_SCALE_HARTREE)
    return self_energy, scale


def _optimise(
    model: MultiHeadPotential,
    data: _Prepared,
    train_idx: np.ndarray,
    config: TrainingConfig,
    progress: Callable[[int, dict[str, float]], None] | None,
) -> list[float]:
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed + 1)
    history: list[float] = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(train_idx)
        losses, sizes = [], []
        for start in range(0, len(order), config.batch_size):
            indices = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = batch_loss(model, data, indices, config.force_weight, config.device)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            sizes.append(len(indices))
        history.append(float(np.average(losses, weights=sizes)))
        if progress is not None:
            progress(epoch, {"loss": history[-1]})
    return history


def batch_loss(
    model: MultiHeadPotential,
    data: _Prepared,
    indices: np.ndarray,
    force_weight: float,
    device: str = "cpu",
) -> torch.Tensor:
    """Masked multi-task loss of the structures ``indices`` (dimensionless, see module doc)."""
    dtype = model.dtype
    batch = collate([data.graphs[i] for i in indices], model.species, dtype, requires_grad=True)
    batch = _to_device(batch, device)
    predicted = model(batch)
    reference_energy = torch.as_tensor(data.energies[indices], dtype=dtype, device=device)
    reference_gradient = torch.as_tensor(
        np.concatenate([data.gradients[i] for i in indices], axis=1), dtype=dtype, device=device
    )  # (heads, A, 3)
    n_atoms = torch.as_tensor(data.n_atoms[indices], dtype=dtype, device=device)
    total = reference_energy.new_zeros(())
    for k, head in enumerate(model.heads):
        scale = model.energy_scale_hartree[k]
        has_energy = torch.isfinite(reference_energy[:, k])
        if bool(has_energy.any()):
            error = (predicted[head] - reference_energy[:, k]) / n_atoms / scale
            total = total + (error[has_energy] ** 2).mean()
        has_gradient = torch.isfinite(reference_gradient[k, :, 0])
        if force_weight > 0 and bool(has_gradient.any()):
            (gradient,) = torch.autograd.grad(
                predicted[head].sum(), batch.positions_angstrom, create_graph=True
            )
            error = (gradient - reference_gradient[k])[has_gradient] / scale
            total = total + force_weight * (error**2).sum(1).mean()
    return total


def _to_device(batch: AtomsBatch, device: str) -> AtomsBatch:
    if device == "cpu":
        return batch
    for name, value in vars(batch).items():
        if isinstance(value, torch.Tensor):
            setattr(batch, name, value.to(device))
    return batch


def _mean_abs_errors(
    model: MultiHeadPotential, data: _Prepared, indices: np.ndarray, head: int, device: str
) -> tuple[float | None, float | None]:
    """Energy MAE per atom (Hartree) and force MAE per component (Hartree/Å)."""
    if indices.size == 0:
        return None, None
    dtype = model.dtype
    batch = collate([data.graphs[i] for i in indices], model.species, dtype, requires_grad=True)
    batch = _to_device(batch, device)
    energy = model(batch)[model.heads[head]]
    (gradient,) = torch.autograd.grad(energy.sum(), batch.positions_angstrom)
    energy_np, gradient_np = energy.detach().cpu().numpy(), gradient.cpu().numpy()
    reference = data.energies[indices, head]
    has_energy = np.isfinite(reference)
    energy_mae = (
        float(
            np.mean(np.abs(energy_np - reference)[has_energy] / data.n_atoms[indices][has_energy])
        )
        if has_energy.any()
        else None
    )
    reference_gradient = np.concatenate([data.gradients[i][head] for i in indices])
    has_gradient = np.isfinite(reference_gradient[:, 0])
    force_mae = (
        float(np.mean(np.abs(gradient_np - reference_gradient)[has_gradient]))
        if has_gradient.any()
        else None
    )
    return energy_mae, force_mae


def save_model(result_or_model: TrainingResult | MultiHeadPotential, path: str | Path) -> None:
    """Write a model artifact (see :mod:`interphase.models.artifact`)."""
    model = (
        result_or_model.model if isinstance(result_or_model, TrainingResult) else result_or_model
    )
    artifact.save_model(model, path)


load_model = artifact.load_model
