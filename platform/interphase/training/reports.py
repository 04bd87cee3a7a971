"""What a training run reports: per-epoch reports, progress hooks and the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interphase.models.multihead import MultiHeadPotential
from interphase.training.metrics import ParityCollector, SplitMetrics
from interphase.training.settings import TrainingSettings


@dataclass
class EpochReport:
    """What one epoch did: errors per split and head, learning rate, best so far."""

    epoch: int
    learning_rate: float
    train: SplitMetrics
    validation: SplitMetrics | None
    is_best: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "learning_rate": self.learning_rate,
            "train": self.train.to_dict(),
            "validation": None if self.validation is None else self.validation.to_dict(),
            "is_best": self.is_best,
            "seconds": self.seconds,
        }


@dataclass
class TrainingCallbacks:
    """Hooks for progress display and recording; all optional."""

    on_epoch: Callable[[EpochReport], None] | None = None
    #: (batches done in this epoch, batches per epoch, epoch)
    on_batch: Callable[[int, int, int], None] | None = None
    #: After each checkpoint write, with its path.
    on_checkpoint: Callable[[Path], None] | None = None


@dataclass
class TrainingResult:
    """The best model (eval mode, CPU) with its history, split and final errors."""

    model: MultiHeadPotential
    settings: TrainingSettings
    history: list[dict[str, Any]]  # EpochReport.to_dict() of every epoch, resumed ones too
    best_epoch: int
    final: dict[str, SplitMetrics]  # best model on "train" and "validation"
    parity: dict[str, ParityCollector] = field(default_factory=dict)
    train_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    validation_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def loss_history(self) -> list[float]:
        """Training loss per epoch (dimensionless; summed while each epoch trains).

        Defined as the validation loss is (:class:`~interphase.training.metrics.MetricAccumulator`).
        """
        return [float(r["train"]["loss"]) for r in self.history]
