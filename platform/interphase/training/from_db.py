"""Training datasets from the provenance database, and recorded training runs.

A training run stores the exact label ids it used (its dataset snapshot), its
configuration and metrics, and the checksum of the model artifact it wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from interphase.db.models import Label, LevelOfTheory, ModelArtifact, Structure, TrainingRun, utcnow
from interphase.db.session import transaction
from interphase.training.trainer import (
    TrainingConfig,
    TrainingExample,
    TrainingResult,
    save_model,
    train_multihead,
)


@dataclass
class Snapshot:
    """Training examples with the label ids they came from."""

    examples: list[TrainingExample]
    heads: list[str]
    label_ids: np.ndarray


def load_snapshot(url: str | None, *, campaign_id: int | None = None) -> Snapshot:
    """Every structure with at least one energy label; one head per level present."""
    with transaction(url) as session:
        query = (
            select(Label, Structure, LevelOfTheory.name)
            .join(Structure, Label.structure_id == Structure.id)
            .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
            .where(Label.total_energy_hartree.is_not(None))
            .order_by(Structure.id, Label.id)
        )
        if campaign_id is not None:
            query = query.where(Structure.campaign_id == campaign_id)
        examples: dict[int, TrainingExample] = {}
        label_ids = []
        for label, structure, level in session.execute(query).all():
            example = examples.get(structure.id)
            if example is None:
                example = examples[structure.id] = TrainingExample(
                    numbers=np.asarray(structure.numbers, dtype=int),
                    positions_angstrom=structure.positions_angstrom,
                    cell_angstrom=structure.cell_angstrom,
                    pbc=structure.pbc_flags,
                    energies_hartree={},
                    gradients_hartree_per_angstrom={},
                )
            assert label.total_energy_hartree is not None  # filtered in the query
            example.energies_hartree[level] = label.total_energy_hartree
            if label.gradient_hartree_per_angstrom is not None:
                example.gradients_hartree_per_angstrom[level] = label.gradient_hartree_per_angstrom
            label_ids.append(label.id)
    heads = sorted({head for ex in examples.values() for head in ex.energies_hartree})
    return Snapshot(list(examples.values()), heads, np.asarray(label_ids, dtype=np.int64))


def metrics_json(result: TrainingResult) -> dict[str, Any]:
    """Per-head, per-split errors (Hartree, Hartree/Å) and the loss history, as JSON."""
    heads = {
        head: {
            split: {
                "energy_mae_per_atom_hartree": getattr(m, f"{split}_energy_mae_per_atom_hartree"),
                "force_mae_hartree_per_angstrom": getattr(
                    m, f"{split}_force_mae_hartree_per_angstrom"
                ),
            }
            for split in ("train", "validation")
        }
        for head, m in result.metrics.items()
    }
    return {"heads": heads, "loss_history": [float(v) for v in result.loss_history]}


def train_from_database(
    url: str | None,
    config: TrainingConfig,
    artifacts_dir: Path,
    *,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[int, TrainingResult]:
    """Train on the database's labels; record the run and its artifact. Returns (run id, result)."""
    snapshot = load_snapshot(url, campaign_id=campaign_id)
    if not snapshot.examples:
        raise ValueError("no labeled structures to train on: label some structures first")
    with transaction(url) as session:
        run = TrainingRun(
            config=asdict(config),
            heads=snapshot.heads,
            label_ids=snapshot.label_ids,
            synthetic_label_ids=np.zeros(0, dtype=np.int64),
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    try:
        result = train_multihead(snapshot.examples, snapshot.heads, config, progress=progress)
    except BaseException:
        with transaction(url) as session:
            failed = session.get_one(TrainingRun, run_id)
            failed.status, failed.finished_at = "failed", utcnow()
        raise
    path = artifacts_dir / "models" / f"training-run-{run_id}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(result, path)
    with transaction(url) as session:
        run = session.get_one(TrainingRun, run_id)
        run.metrics = metrics_json(result)
        run.status = "succeeded"
        run.finished_at = utcnow()
        session.add(
            ModelArtifact(
                training_run_id=run_id,
                path=str(path.resolve()),
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                elements=sorted({int(z) for ex in snapshot.examples for z in ex.numbers}),
                heads=snapshot.heads,
            )
        )
    return run_id, result
