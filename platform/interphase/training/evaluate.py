"""Errors of a trained model per head on database labels or on a dataset file."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sqlalchemy.orm import Session

from interphase.models.multihead import MultiHeadPotential
from interphase.records import XTB_LEVEL, StructureRecord
from interphase.training.dataset import TargetScales, TrainingData, TrainingExample, prepare
from interphase.training.loss import LossWeighting, batch_loss_terms
from interphase.training.metrics import MetricAccumulator, ParityCollector, SplitMetrics
from interphase.training.settings import DataSettings, LossSettings


@dataclass
class ModelEvaluation:
    """Errors of each head, how many structures were used and skipped, and parity data."""

    metrics: SplitMetrics
    n_structures: int
    n_skipped: int  # structures with elements the model does not know
    parity: ParityCollector


def evaluate_split(
    model: MultiHeadPotential,
    data: TrainingData,
    indices: np.ndarray,
    scales: TargetScales,
    weighting: LossWeighting,
    *,
    batch_size: int,
    energy_only: bool = False,
    parity: ParityCollector | None = None,
) -> SplitMetrics:
    """Errors and loss of ``model`` on the structures ``indices``.

    The loss is defined as for the training split while it trains
    (:class:`~interphase.training.metrics.MetricAccumulator`): the same terms,
    fixed weights and per-label means, whatever ``batch_size``.
    """
    model.eval()
    accumulator = MetricAccumulator(data.heads, weighting.fixed)
    forces = any(np.isfinite(data.gradients[i]).any() for i in indices)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        inputs, targets = data.batch(chunk, model, requires_grad=forces, device=model.device)
        with torch.set_grad_enabled(forces):
            terms, prediction = batch_loss_terms(
                model, inputs, targets, scales, forces=forces, create_graph=False
            )
        if energy_only:
            terms = {k: v for k, v in terms.items() if not k.startswith("force:")}
        accumulator.add(prediction, targets, {k: float(v.detach()) for k, v in terms.items()})
        if parity is not None:
            parity.add(prediction, targets, data.structure_ids[chunk])
    return accumulator.summary()


def example_from_record(
    record: StructureRecord, charge_level: str | None = XTB_LEVEL
) -> TrainingExample:
    """Targets of a dataset record (every level's energy and gradient; molecular charges)."""
    example = TrainingExample(
        numbers=np.asarray(record.numbers, dtype=np.int64),
        positions_angstrom=np.asarray(record.positions_angstrom, dtype=float),
        cell_angstrom=record.cell_angstrom,
        pbc=record.pbc,
        total_charge_e=float(record.charge),
    )
    for level, label in record.labels.items():
        if label.total_energy_hartree is not None:
            example.energies_hartree[level] = float(label.total_energy_hartree)
        if label.gradient_hartree_per_angstrom is not None:
            example.gradients_hartree_per_angstrom[level] = label.gradient_hartree_per_angstrom
        if level == charge_level and label.charges_e is not None and not record.is_periodic:
            example.charges_e = np.asarray(label.charges_e, dtype=float)
    return example


def evaluate_model(
    model: MultiHeadPotential,
    examples: list[TrainingExample],
    *,
    batch_size: int = 64,
) -> ModelEvaluation:
    """Errors of every head of ``model`` on ``examples`` (unknown elements skipped)."""
    known = set(model.species)
    usable = [ex for ex in examples if set(int(z) for z in ex.numbers) <= known]
    if not usable:
        raise ValueError(
            f"none of the {len(examples)} structures has only the model's elements "
            f"{model.species}; nothing to evaluate"
        )
    data = prepare(usable, model.heads, model.pair_cutoff_angstrom, require_energies=False)
    heads = len(model.heads)
    # Loss values are not reported here; unit scales keep them finite.
    scales = TargetScales(
        np.zeros((heads, len(model.species))), np.ones(heads), np.ones(heads), 1.0
    )
    parity = ParityCollector(model.heads)
    metrics = evaluate_split(
        model,
        data,
        np.arange(len(usable)),
        scales,
        LossWeighting(model.heads, LossSettings()),
        batch_size=batch_size,
        parity=parity,
    )
    return ModelEvaluation(metrics, len(usable), len(examples) - len(usable), parity)


def database_examples(
    session: Session,
    model: MultiHeadPotential,
    *,
    campaign_id: int | None = None,
    structure_ids: Collection[int] | None = None,
) -> list[TrainingExample]:
    """Database structures with a label at one of the model's heads (or charges).

    ``campaign_id`` keeps one campaign's; ``structure_ids`` only those
    structures (a campaign's test split).
    """
    from interphase.training.snapshot import load_snapshot

    examples = load_snapshot(
        session, DataSettings(heads=list(model.heads)), campaign_id=campaign_id
    ).examples
    if structure_ids is None:
        return examples
    wanted = set(structure_ids)
    return [example for example in examples if example.structure_id in wanted]


def file_examples(
    path: str | Path, fmt: str | None = None, level: str | None = None
) -> list[TrainingExample]:
    """Examples from a dataset file (paper JSON, extxyz, ...; see ``interphase data``)."""
    from interphase.io.formats import read_records

    return [example_from_record(record) for record in read_records(path, fmt, level)]
