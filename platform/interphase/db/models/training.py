"""Trainings of the multi-head network: runs, their per-epoch errors and model files."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interphase.db.models.base import Base, enum_column, utcnow
from interphase.db.types import NumpyArray


class TrainingStatus(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    #: Stopped by ``KeyboardInterrupt`` (Ctrl-C) rather than by an error.
    interrupted = "interrupted"


class TrainingRun(Base):
    """A training of the multi-head network on an exact dataset snapshot."""

    __tablename__ = "training_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    heads: Mapped[list[Any]] = mapped_column(JSON, default=list)
    label_ids: Mapped[np.ndarray] = mapped_column(NumpyArray("<i8"))
    synthetic_label_ids: Mapped[np.ndarray] = mapped_column(NumpyArray("<i8"))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(enum_column(TrainingStatus), default=TrainingStatus.running)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), default=None
    )
    iteration_id: Mapped[int | None] = mapped_column(
        ForeignKey("iteration.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Progress and resume state (migration 0003).
    epochs_completed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    best_epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    checkpoint_path: Mapped[str | None] = mapped_column(String(500), default=None)

    artifacts: Mapped[list[ModelArtifact]] = relationship(back_populates="training_run")
    epoch_metrics: Mapped[list[TrainingEpochMetric]] = relationship(
        back_populates="training_run", order_by="TrainingEpochMetric.id"
    )


class TrainingEpochMetric(Base):
    """Errors of one head on one split after one epoch (meV; head NULL: charges, loss)."""

    __tablename__ = "training_epoch_metric"
    __table_args__ = (Index("ix_training_epoch_metric_run_epoch", "training_run_id", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(20))  # "train" or "validation"
    head: Mapped[str | None] = mapped_column(String(100), default=None)
    loss: Mapped[float | None] = mapped_column(Float, default=None)
    learning_rate: Mapped[float | None] = mapped_column(Float, default=None)
    n_energies: Mapped[int] = mapped_column(Integer, default=0)
    energy_mae_mev_per_atom: Mapped[float | None] = mapped_column(Float, default=None)
    energy_rmse_mev_per_atom: Mapped[float | None] = mapped_column(Float, default=None)
    n_forces: Mapped[int] = mapped_column(Integer, default=0)
    force_mae_mev_per_angstrom: Mapped[float | None] = mapped_column(Float, default=None)
    force_rmse_mev_per_angstrom: Mapped[float | None] = mapped_column(Float, default=None)
    n_synthetic: Mapped[int] = mapped_column(Integer, default=0)
    synthetic_energy_mae_mev_per_atom: Mapped[float | None] = mapped_column(Float, default=None)
    n_charges: Mapped[int] = mapped_column(Integer, default=0)
    charge_rmse_e: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Structures the split's loss was taken over (head NULL rows; 0008, NULL before).
    n_structures: Mapped[int | None] = mapped_column(Integer, default=None)

    training_run: Mapped[TrainingRun] = relationship(back_populates="epoch_metrics")


class ModelArtifact(Base):
    """A trained model file on disk, identified by its checksum."""

    __tablename__ = "model_artifact"

    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    elements: Mapped[list[Any]] = mapped_column(JSON, default=list)
    heads: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    training_run: Mapped[TrainingRun] = relationship(back_populates="artifacts")
