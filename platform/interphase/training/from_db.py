"""Training runs from the provenance database, recorded with their exact snapshot.

A :class:`~interphase.db.models.TrainingRun` stores the settings, the label and
synthetic-label ids it trained on, one ``training_epoch_metric`` row per epoch,
split and head, its checkpoint (for ``--resume``), and at the end the metrics
summary, the parity-data file and the checksum of the model artifact.

Files under ``artifacts_dir``: ``training/run-<id>/checkpoint.pt``,
``training/run-<id>/parity.npz`` and ``models/training-run-<id>.pt``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from interphase.db.models import ModelArtifact, TrainingEpochMetric, TrainingRun, utcnow
from interphase.db.session import transaction
from interphase.models.multihead import MultiHeadPotential
from interphase.training.checkpoint import Checkpoint
from interphase.training.metrics import SplitMetrics, write_parity
from interphase.training.settings import TrainingSettings
from interphase.training.snapshot import Snapshot, load_snapshot
from interphase.training.trainer import (
    TrainingCallbacks,
    TrainingResult,
    save_model,
    train_multihead,
)
from interphase.units import mev_to_hartree

__all__ = [
    "Snapshot",
    "TrainingRunError",
    "load_snapshot",
    "metrics_json",
    "train_from_database",
]


class TrainingRunError(ValueError):
    """A training run cannot be started or resumed as asked."""


def metrics_json(result: TrainingResult) -> dict[str, Any]:
    """Final errors and loss of the best model per head and split, and the loss history."""
    heads: dict[str, dict[str, Any]] = {}
    for split, metrics in result.final.items():
        for head, m in metrics.heads.items():
            values = m.to_dict()
            # Hartree-unit keys kept for the demo report and older readers.
            values["energy_mae_per_atom_hartree"] = _hartree(m.energy_mae_mev_per_atom)
            values["force_mae_hartree_per_angstrom"] = _hartree(m.force_mae_mev_per_angstrom)
            heads.setdefault(head, {})[split] = values
    return {
        "heads": heads,
        "charge_rmse_e": {split: m.charge_rmse_e for split, m in result.final.items()},
        # The best model's loss on each split, both taken after training (same model).
        "loss": {split: m.loss for split, m in result.final.items()},
        "n_structures": {split: m.n_structures for split, m in result.final.items()},
        "loss_history": result.loss_history,
        "best_epoch": result.best_epoch,
    }


def _hartree(mev: float | None) -> float | None:
    return None if mev is None else mev_to_hartree(mev)


def _metric_rows(run_id: int, report: dict[str, Any]) -> list[TrainingEpochMetric]:
    """One row per split and head, and one per split (head NULL) for loss and charges."""
    rows = []
    for split in ("train", "validation"):
        metrics = report.get(split)
        if metrics is None:
            continue
        common = {"training_run_id": run_id, "epoch": report["epoch"], "split": split}
        rows.append(
            TrainingEpochMetric(
                **common,
                head=None,
                loss=metrics["loss"],
                learning_rate=report["learning_rate"],
                n_charges=metrics["n_charges"],
                charge_rmse_e=metrics["charge_rmse_e"],
                n_structures=metrics.get("n_structures"),  # absent in older checkpoints
            )
        )
        for head, values in metrics["heads"].items():
            rows.append(TrainingEpochMetric(**common, head=head, **values))
    return rows


def _record_epochs(url: str | None, run_id: int, reports: list[dict[str, Any]]) -> None:
    with transaction(url) as session:
        run = session.get_one(TrainingRun, run_id)
        for report in reports:
            if report["epoch"] <= run.epochs_completed:
                continue
            session.add_all(_metric_rows(run_id, report))
            run.epochs_completed = report["epoch"]
            if report["is_best"]:
                run.best_epoch = report["epoch"]


def _start_run(
    url: str | None,
    settings: TrainingSettings,
    snapshot: Snapshot,
    artifacts_dir: Path,
    campaign_id: int | None,
    iteration_id: int | None,
) -> int:
    with transaction(url) as session:
        run = TrainingRun(
            config=settings.model_dump(mode="json"),
            heads=snapshot.heads,
            label_ids=snapshot.label_ids,
            synthetic_label_ids=snapshot.synthetic_label_ids,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        session.add(run)
        session.flush()
        path = artifacts_dir / "training" / f"run-{run.id}" / "checkpoint.pt"
        run.checkpoint_path = str(path.resolve())
        return run.id


def _resume_run(
    url: str | None, run_id: int, device: str | None
) -> tuple[TrainingSettings, Snapshot, Path]:
    """Settings, exact snapshot and checkpoint of a recorded run; marks it running."""
    with transaction(url) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise TrainingRunError(f"no training run {run_id}; `interphase train` lists new ids")
        settings = TrainingSettings.model_validate(run.config)
        if device is not None:
            settings = settings.model_copy(update={"device": device})
        if run.status == "succeeded" and run.epochs_completed >= settings.epochs:
            raise TrainingRunError(
                f"training run {run_id} already finished its {settings.epochs} epochs"
            )
        if run.checkpoint_path is None or not Path(run.checkpoint_path).exists():
            raise TrainingRunError(
                f"training run {run_id} has no checkpoint on this machine "
                f"({run.checkpoint_path}); it cannot be resumed"
            )
        heads, label_ids, synthetic_ids = list(run.heads), run.label_ids, run.synthetic_label_ids
        checkpoint = Path(run.checkpoint_path)
        run.status, run.finished_at = "running", None
    with transaction(url, read_only=True) as session:
        snapshot = load_snapshot(
            session,
            settings.data,
            synthetic=settings.uses_synthetic,
            heads=heads,
            label_ids=label_ids,
            synthetic_label_ids=synthetic_ids,
        )
    # Epochs checkpointed but not yet recorded (a crash between the two).
    _record_epochs(url, run_id, Checkpoint.load(checkpoint).history)
    return settings, snapshot, checkpoint


def train_from_database(
    url: str | None,
    settings: TrainingSettings,
    artifacts_dir: Path,
    *,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    resume_run_id: int | None = None,
    callbacks: TrainingCallbacks | None = None,
    exclude_structure_ids: Collection[int] = (),
    initial_model: MultiHeadPotential | None = None,
) -> tuple[int, TrainingResult]:
    """Train on the database's labels and record everything; returns (run id, result).

    With ``resume_run_id`` the recorded run continues from its checkpoint on its
    own snapshot and settings (``settings`` then only supplies ``device``).
    ``exclude_structure_ids`` are never trained on (a campaign's test split);
    ``initial_model`` warm-starts the network from a previous model's matching
    parameters.

    Epochs are recorded as they finish (each in its own transaction, so a
    dashboard sees them live); the run, its artifact and metrics are recorded
    when training ends.
    """
    callbacks = callbacks or TrainingCallbacks()
    if resume_run_id is None:
        with transaction(url, read_only=True) as session:
            snapshot = load_snapshot(
                session,
                settings.data,
                synthetic=settings.uses_synthetic,
                campaign_id=campaign_id,
                exclude_structure_ids=exclude_structure_ids,
            )
        if not snapshot.examples:
            raise TrainingRunError(
                "no labeled structures to train on: label some structures first "
                "(`interphase jobs run`) or widen the data selection"
            )
        campaign_id = campaign_id if campaign_id is not None else settings.data.campaign_id
        run_id = _start_run(url, settings, snapshot, artifacts_dir, campaign_id, iteration_id)
        checkpoint = artifacts_dir / "training" / f"run-{run_id}" / "checkpoint.pt"
    else:
        run_id = resume_run_id
        settings, snapshot, checkpoint = _resume_run(url, run_id, settings.device)

    def on_epoch(report: Any) -> None:
        _record_epochs(url, run_id, [report.to_dict()])
        if callbacks.on_epoch is not None:
            callbacks.on_epoch(report)

    recording = TrainingCallbacks(on_epoch, callbacks.on_batch, callbacks.on_checkpoint)
    try:
        result = train_multihead(
            snapshot.examples,
            snapshot.heads,
            settings,
            callbacks=recording,
            checkpoint_path=checkpoint,
            resume=resume_run_id is not None,
            initial_model=initial_model,
        )
    except BaseException as error:
        with transaction(url) as session:
            failed = session.get_one(TrainingRun, run_id)
            failed.status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            failed.finished_at = utcnow()
        raise
    _finish_run(url, run_id, result, snapshot, artifacts_dir)
    return run_id, result


def _finish_run(
    url: str | None, run_id: int, result: TrainingResult, snapshot: Snapshot, artifacts_dir: Path
) -> None:
    path = save_model(result, artifacts_dir / "models" / f"training-run-{run_id}.pt")
    parity = write_parity(
        artifacts_dir / "training" / f"run-{run_id}" / "parity.npz", result.parity
    )
    with transaction(url) as session:
        run = session.get_one(TrainingRun, run_id)
        run.metrics = {**metrics_json(result), "parity_path": str(parity.resolve())}
        run.status = "succeeded"
        run.best_epoch = result.best_epoch
        run.finished_at = utcnow()
        session.add(
            ModelArtifact(
                training_run_id=run_id,
                path=str(path.resolve()),
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                elements=list(result.model.species),
                heads=list(result.model.heads),
            )
        )


def split_metrics_table(metrics: dict[str, SplitMetrics]) -> list[tuple[str, str, dict[str, Any]]]:
    """(head, split, values) rows of final metrics, for reports."""
    return [
        (head, split, m.to_dict())
        for split, split_metrics in metrics.items()
        for head, m in split_metrics.heads.items()
    ]
