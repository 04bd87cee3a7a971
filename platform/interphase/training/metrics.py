"""Errors per head (energy per atom, forces, synthetic energies) and of charges.

Stored values are in meV (energies per atom, forces per Å) and e (charges).
:class:`MetricAccumulator` keeps running sums only, so an epoch over a large
dataset costs no memory; :class:`ParityCollector` keeps the predicted and
reference arrays of a final evaluation for parity plots.

The loss of a split has one definition for training and validation (see
:class:`MetricAccumulator`), so the two curves of a run can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from interphase.training.dataset import BatchTargets
from interphase.training.loss import BatchPrediction
from interphase.units import HARTREE_TO_MEV


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
    #: ``Σ_t w_t · mean_t`` (dimensionless; see :class:`MetricAccumulator`).
    loss: float | None = None
    #: Structures evaluated (with repeats when an epoch draws more than one pass).
    n_structures: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "heads": {head: m.to_dict() for head, m in self.heads.items()},
            "n_charges": self.n_charges,
            "charge_rmse_e": self.charge_rmse_e,
            "loss": self.loss,
            "n_structures": self.n_structures,
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
class _TermSums:
    """Σ over batches of (batch mean × labels) of one loss term, and the labels."""

    weighted: float = 0.0
    labels: int = 0


@dataclass
class MetricAccumulator:
    """Running error sums over batches of one split, and its loss.

    The loss of a split, training and validation alike, is

        loss = Σ_t w_t · L_t,   L_t = (1 / n_t) Σ_labels of t in the split (scaled error)²

    with the fixed task weights ``w_t`` (``weights``; no learnable uncertainty
    terms) and every term ``t`` (energy, force and synthetic energy per head,
    charges) that has labels in the split. ``n_t`` counts structures for
    energies and atoms for forces and charges, so each label counts once,
    whatever batch it came in: a batch mean enters weighted by its labels. The
    training split's loss is summed while its epoch trains, the validation
    split's after it.
    """

    heads: list[str]
    #: Fixed weight of each loss term (:attr:`LossWeighting.fixed`).
    weights: Mapping[str, float]
    energy: dict[str, _Sums] = field(default_factory=dict)
    force: dict[str, _Sums] = field(default_factory=dict)
    synthetic: dict[str, _Sums] = field(default_factory=dict)
    charge: _Sums = field(default_factory=_Sums)
    terms: dict[str, _TermSums] = field(default_factory=dict)
    n_structures: int = 0

    def __post_init__(self) -> None:
        for table in (self.energy, self.force, self.synthetic):
            table.update({head: _Sums() for head in self.heads})

    def add(
        self, prediction: BatchPrediction, targets: BatchTargets, terms: Mapping[str, float]
    ) -> None:
        """Accumulate the errors of one batch (Hartree, Hartree/Å, e) and its loss terms.

        ``terms``: the batch mean of each loss term counted in the loss (a term
        left out, such as forces in energy-only mode, is not passed).
        """
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
        for name, value in terms.items():
            labels = prediction.label_counts[name]
            sums = self.terms.setdefault(name, _TermSums())
            sums.weighted += value * labels
            sums.labels += labels
        self.n_structures += len(targets.indices)

    def loss(self) -> float | None:
        """``Σ_t w_t · L_t`` over the batches so far; None before any term."""
        if not self.terms:
            return None
        return sum(
            self.weights[name] * sums.weighted / sums.labels for name, sums in self.terms.items()
        )

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
        return SplitMetrics(
            heads, self.charge.count, self.charge.rmse(), self.loss(), self.n_structures
        )


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
