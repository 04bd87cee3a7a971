"""Labels: reference data at a level of theory, and the GP fits that predict synthetic ones."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Float, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interphase.db.models.base import Base, utcnow
from interphase.db.types import NumpyArray

if TYPE_CHECKING:
    from interphase.db.models.structures import LevelOfTheory, Structure


class Label(Base):
    """Reference data of a structure at a level of theory (Hartree, Å, e)."""

    __tablename__ = "label"
    __table_args__ = (UniqueConstraint("structure_id", "level_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("labeling_job.id", ondelete="SET NULL"), default=None
    )
    total_energy_hartree: Mapped[float | None] = mapped_column(Float, default=None)
    atomization_energy_hartree: Mapped[float | None] = mapped_column(Float, default=None)
    gradient_hartree_per_angstrom: Mapped[np.ndarray | None] = mapped_column(
        NumpyArray("<f8", (3,)), default=None
    )
    charges_e: Mapped[np.ndarray | None] = mapped_column(NumpyArray("<f8"), default=None)
    dipole_e_angstrom: Mapped[np.ndarray | None] = mapped_column(NumpyArray("<f8"), default=None)
    #: Where the label came from: engine, version, settings, host, or source file and key.
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    structure: Mapped[Structure] = relationship(back_populates="labels")
    level: Mapped[LevelOfTheory] = relationship()


class GPRModel(Base):
    """A fitted local GP: one subset, one level; enough stored to reproduce predictions."""

    __tablename__ = "gpr_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id"))
    subset_key: Mapped[str] = mapped_column(String(250), index=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    descriptor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    training_label_ids: Mapped[np.ndarray] = mapped_column(NumpyArray("<i8"))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), default=None
    )
    iteration_id: Mapped[int | None] = mapped_column(
        ForeignKey("iteration.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    level: Mapped[LevelOfTheory] = relationship()


class SyntheticLabel(Base):
    """An energy predicted by a GP for a (displaced) structure: never a reference label."""

    __tablename__ = "synthetic_label"
    __table_args__ = (Index("ix_synthetic_label_structure_id", "structure_id"),)  # 0004d

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id"))
    gpr_model_id: Mapped[int] = mapped_column(ForeignKey("gpr_model.id", ondelete="CASCADE"))
    energy_hartree: Mapped[float] = mapped_column(Float)
    energy_std_hartree: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
