"""Training runs for the dashboard: list, settings, dataset per head, curves, artifacts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from interphase.db.models import (
    Campaign,
    Iteration,
    ModelArtifact,
    SyntheticLabel,
    TrainingEpochMetric,
    TrainingRun,
)

#: Bytes per stored id in ``training_run.label_ids`` (little-endian int64).
ID_BYTES = 8
#: Id ranges looked up per query when finding a run's GPs.
RANGE_CHUNK = 500


@dataclass(frozen=True)
class RunRow:
    id: int
    status: str
    heads: list[str]
    campaign: str | None
    iteration_index: int | None
    n_labels: int
    n_synthetic: int
    epochs_completed: int
    epochs: int | None
    best_epoch: int | None
    started_at: datetime
    finished_at: datetime | None


def training_runs(session: Session, limit: int = 200) -> list[RunRow]:
    """The newest training runs, with dataset sizes read from the stored id arrays' lengths."""
    rows = session.execute(
        select(
            TrainingRun.id,
            TrainingRun.status,
            TrainingRun.heads,
            Campaign.name,
            Iteration.index,
            func.coalesce(func.length(TrainingRun.label_ids), 0) / ID_BYTES,
            func.coalesce(func.length(TrainingRun.synthetic_label_ids), 0) / ID_BYTES,
            TrainingRun.epochs_completed,
            TrainingRun.config,
            TrainingRun.best_epoch,
            TrainingRun.started_at,
            TrainingRun.finished_at,
        )
        .outerjoin(Campaign, TrainingRun.campaign_id == Campaign.id)
        .outerjoin(Iteration, TrainingRun.iteration_id == Iteration.id)
        .order_by(TrainingRun.id.desc())
        .limit(limit)
    ).all()
    return [
        RunRow(
            id=run_id,
            status=status,
            heads=list(heads or []),
            campaign=campaign,
            iteration_index=index,
            n_labels=int(n_labels),
            n_synthetic=int(n_synthetic),
            epochs_completed=int(done or 0),
            epochs=(config or {}).get("epochs"),
            best_epoch=best,
            started_at=started,
            finished_at=finished,
        )
        for (
            run_id,
            status,
            heads,
            campaign,
            index,
            n_labels,
            n_synthetic,
            done,
            config,
            best,
            started,
            finished,
        ) in rows
    ]


@dataclass(frozen=True)
class HeadData:
    """What one head trained and was checked on (from the newest epoch's rows)."""

    head: str
    energies: dict[str, int] = field(default_factory=dict)  # split -> structures
    forces: dict[str, int] = field(default_factory=dict)  # split -> atoms with gradients
    synthetic: dict[str, int] = field(default_factory=dict)  # split -> synthetic energies


@dataclass(frozen=True)
class Curves:
    """Per-epoch values for the training-curve charts, by split (and head)."""

    epochs: list[int]
    loss: dict[str, list[float | None]]  # split -> per epoch
    energy_mae: dict[tuple[str, str], list[float | None]]  # (head, split), meV/atom
    force_mae: dict[tuple[str, str], list[float | None]]  # (head, split), meV/Å
    #: split -> structures its loss was taken over (newest epoch; empty for runs
    #: recorded before migration 0008).
    structures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunDetail:
    run: TrainingRun
    campaign: str | None
    iteration_index: int | None
    heads: list[HeadData]
    curves: Curves
    artifacts: list[tuple[ModelArtifact, bool]]  # (artifact, file present)
    gp_ids: list[int]  # GPs whose synthetic labels the run used

    @property
    def is_live(self) -> bool:
        return self.run.status == "running"

    @property
    def final_metrics(self) -> dict[str, dict[str, dict[str, Any]]]:
        """head -> split -> values, from the run's summary (empty while it runs)."""
        heads: dict[str, dict[str, dict[str, Any]]] = (self.run.metrics or {}).get("heads", {})
        return heads


def run_detail(session: Session, run_id: int) -> RunDetail | None:
    run = session.get(TrainingRun, run_id)
    if run is None:
        return None
    campaign = session.get(Campaign, run.campaign_id) if run.campaign_id else None
    iteration = session.get(Iteration, run.iteration_id) if run.iteration_id else None
    metrics = list(
        session.scalars(
            select(TrainingEpochMetric)
            .where(TrainingEpochMetric.training_run_id == run_id)
            .order_by(TrainingEpochMetric.epoch, TrainingEpochMetric.id)
        )
    )
    artifacts = list(
        session.scalars(
            select(ModelArtifact)
            .where(ModelArtifact.training_run_id == run_id)
            .order_by(ModelArtifact.id)
        )
    )
    return RunDetail(
        run=run,
        campaign=campaign.name if campaign else None,
        iteration_index=iteration.index if iteration else None,
        heads=_head_data(metrics, list(run.heads or [])),
        curves=_curves(metrics),
        artifacts=[(artifact, Path(artifact.path).is_file()) for artifact in artifacts],
        gp_ids=_gps_of(session, run),
    )


def _head_data(metrics: list[TrainingEpochMetric], heads: list[str]) -> list[HeadData]:
    last = max((m.epoch for m in metrics), default=None)
    data = {head: HeadData(head) for head in heads}
    for m in metrics:
        if m.epoch != last or m.head is None:
            continue
        one = data.setdefault(m.head, HeadData(m.head))
        one.energies[m.split] = m.n_energies
        one.forces[m.split] = m.n_forces
        one.synthetic[m.split] = m.n_synthetic
    return list(data.values())


def _curves(metrics: list[TrainingEpochMetric]) -> Curves:
    epochs = sorted({m.epoch for m in metrics})
    position = {epoch: k for k, epoch in enumerate(epochs)}

    def blank() -> list[float | None]:
        return [None] * len(epochs)

    loss: dict[str, list[float | None]] = defaultdict(blank)
    energy: dict[tuple[str, str], list[float | None]] = defaultdict(blank)
    force: dict[tuple[str, str], list[float | None]] = defaultdict(blank)
    structures: dict[str, int] = {}
    for m in metrics:
        k = position[m.epoch]
        if m.head is None:
            loss[m.split][k] = m.loss
            if m.n_structures is not None:
                structures[m.split] = m.n_structures  # rows come in epoch order
            continue
        if m.energy_mae_mev_per_atom is not None:
            energy[(m.head, m.split)][k] = m.energy_mae_mev_per_atom
        if m.force_mae_mev_per_angstrom is not None:
            force[(m.head, m.split)][k] = m.force_mae_mev_per_angstrom
    return Curves(epochs, dict(loss), dict(energy), dict(force), structures)


def _gps_of(session: Session, run: TrainingRun) -> list[int]:
    """GPs whose synthetic labels the run used.

    The ids are looked up as ranges of consecutive ids (a run's synthetic labels
    are mostly stored together), so 40,000 ids cost one small query, not 40,000
    bound parameters.
    """
    found: set[int] = set()
    ranges = id_ranges(run.synthetic_label_ids)
    for start in range(0, len(ranges), RANGE_CHUNK):
        chunk = ranges[start : start + RANGE_CHUNK]
        found.update(
            session.scalars(
                select(SyntheticLabel.gpr_model_id)
                .where(or_(*(SyntheticLabel.id.between(lo, hi) for lo, hi in chunk)))
                .group_by(SyntheticLabel.gpr_model_id)
            )
        )
    return sorted(found)


def id_ranges(ids: np.ndarray) -> list[tuple[int, int]]:
    """Sorted ids as inclusive ranges of consecutive values: [1, 2, 3, 7] → [(1, 3), (7, 7)]."""
    if len(ids) == 0:
        return []
    unique = np.unique(np.asarray(ids, dtype=np.int64))
    breaks = np.flatnonzero(np.diff(unique) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(unique) - 1]])
    return [(int(unique[a]), int(unique[b])) for a, b in zip(starts, ends, strict=True)]


def artifact(session: Session, run_id: int, artifact_id: int) -> ModelArtifact | None:
    """The artifact ``artifact_id`` of run ``run_id`` (None when it is not that run's)."""
    found = session.get(ModelArtifact, artifact_id)
    return found if found is not None and found.training_run_id == run_id else None
