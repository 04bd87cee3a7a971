"""Errors per head (energy per atom, forces, synthetic energies) and of charges.

Stored values are in meV (energies per atom, forces per Å) and e (charges).
:class:`MetricAccumulator` keeps running sums only, so an epoch over a large
dataset costs no memory; :class:`ParityCollector` keeps the predicted and
reference arrays of a final evaluation for parity plots.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase.units import Hartree

from interphase.training.dataset import BatchTargets
from interphase.training.loss import BatchPrediction

HARTREE_TO_MEV = float(Hartree) * 1000.0


@dataclass
class HeadMetrics:
    """Errors of one head on one split (None where the split has no such label)."""

    n_energies: int = 0
    energy_mae_mev_per_atom: float | None = None
    energy_rmse_mev_per_atom: float | None = None
    n_forces: int = 0  # atoms with a gradient label
    force_mae_mev_per_angstrom: float | None = None  # per Cartesian component
    force_rmse_mev_per_angstrom: float | None = None
    n_synthetic: int = 0
    synthetic_energy_mae_mev_per_atom: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass
class SplitMetrics:
    """All errors of one split after one epoch."""

    heads: dict[str, HeadMetrics]
    n_charges: int = 0
    charge_rmse_e: float | None = None
    loss: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "heads": {head: m.to_dict() for head, m in self.heads.items()},
            "n_charges": self.n_charges,
            "charge_rmse_e": self.charge_rmse_e,
            "loss": self.loss,
        }


@dataclass
class _Sums:
    count: int = 0
    absolute: float = 0.0
    square: float = 0.0

    def add(self, errors: np.ndarray) -> None:
        self.count += errors.size
        self.absolute += float(np.abs(errors).sum())
        self.square += float((errors**2).sum())

    def mae(self) -> float | None:
        return self.absolute / self.count if self.count else None

    def rmse(self) -> float | None:
        return float(np.sqrt(self.square / self.count)) if self.count else None


@dataclass
class MetricAccumulator:
    """Running error sums over batches of one split."""

    heads: list[str]
    energy: dict[str, _Sums] = field(default_factory=dict)
    force: dict[str, _Sums] = field(default_factory=dict)
    synthetic: dict[str, _Sums] = field(default_factory=dict)
    charge: _Sums = field(default_factory=_Sums)
    loss_sum: float = 0.0
    loss_weight: int = 0

    def __post_init__(self) -> None:
        for table in (self.energy, self.force, self.synthetic):
            table.update({head: _Sums() for head in self.heads})

    def add(self, prediction: BatchPrediction, targets: BatchTargets, loss: float) -> None:
        """Accumulate the errors of one batch (Hartree, Hartree/Å, e)."""
        n_atoms = targets.n_atoms.cpu().numpy()[:, None]
        energy = prediction.energies.cpu().numpy()
        for table, reference in (
            (self.energy, targets.energies),
            (self.synthetic, targets.synthetic),
        ):
            errors = (energy - reference.cpu().numpy()) / n_atoms
            for h, head in enumerate(self.heads):
                column = errors[:, h]
                table[head].add(column[np.isfinite(column)] * HARTREE_TO_MEV)
        if prediction.gradients is not None:
            errors = (prediction.gradients - targets.gradients).cpu().numpy()
            for h, head in enumerate(self.heads):
                rows = errors[h][np.isfinite(errors[h][:, 0])]
                self.force[head].add(rows.ravel() * HARTREE_TO_MEV)  # per component
        if prediction.charges is not None:
            errors = (prediction.charges - targets.charges).cpu().numpy()
            self.charge.add(errors[np.isfinite(errors)])
        self.loss_sum += loss * len(targets.indices)
        self.loss_weight += len(targets.indices)

    def summary(self) -> SplitMetrics:
        heads = {}
        for head in self.heads:
            energy, force, synthetic = self.energy[head], self.force[head], self.synthetic[head]
            heads[head] = HeadMetrics(
                n_energies=energy.count,
                energy_mae_mev_per_atom=energy.mae(),
                energy_rmse_mev_per_atom=energy.rmse(),
                n_forces=force.count // 3,
                force_mae_mev_per_angstrom=force.mae(),
                force_rmse_mev_per_angstrom=force.rmse(),
                n_synthetic=synthetic.count,
                synthetic_energy_mae_mev_per_atom=synthetic.mae(),
            )
        loss = self.loss_sum / self.loss_weight if self.loss_weight else None
        return SplitMetrics(heads, self.charge.count, self.charge.rmse(), loss)


@dataclass
class ParityCollector:
    """Predicted and reference values of every label seen (for parity plots)."""

    heads: list[str]
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def _append(self, key: str, values: np.ndarray) -> None:
        self.arrays.setdefault(key, []).append(values)

    def add(
        self, prediction: BatchPrediction, targets: BatchTargets, structure_ids: np.ndarray
    ) -> None:
        n_atoms = targets.n_atoms.cpu().numpy()
        energy = prediction.energies.cpu().numpy()
        for h, head in enumerate(self.heads):
            for kind, reference in (("energy", targets.energies), ("synthetic", targets.synthetic)):
                ref = reference[:, h].cpu().numpy()
                keep = np.isfinite(ref)
                self._append(f"{head}/{kind}_structure_id", structure_ids[keep])
                self._append(f"{head}/{kind}_n_atoms", n_atoms[keep])
                self._append(f"{head}/{kind}_predicted_hartree", energy[keep, h])
                self._append(f"{head}/{kind}_reference_hartree", ref[keep])
            if prediction.gradients is not None:
                ref = targets.gradients[h].cpu().numpy()
                keep = np.isfinite(ref[:, 0]) & np.isfinite(
                    prediction.gradients[h, :, 0].cpu().numpy()
                )
                self._append(
                    f"{head}/gradient_predicted_hartree_per_angstrom",
                    prediction.gradients[h].cpu().numpy()[keep],
                )
                self._append(f"{head}/gradient_reference_hartree_per_angstrom", ref[keep])
        if prediction.charges is not None:
            ref = targets.charges.cpu().numpy()
            keep = np.isfinite(ref)
            self._append("charges/predicted_e", prediction.charges.cpu().numpy()[keep])
            self._append("charges/reference_e", ref[keep])

    def as_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + key: np.concatenate(parts) for key, parts in self.arrays.items()}


def write_parity(path: str | Path, splits: dict[str, ParityCollector]) -> Path:
    """Write parity arrays of several splits to one ``.npz`` (keys ``split/head/...``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for split, collector in splits.items():
        arrays.update(collector.as_arrays(f"{split}/"))
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return path
