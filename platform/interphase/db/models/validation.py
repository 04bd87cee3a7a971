"""Validation: reference properties computed once per level, and each model's checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from interphase.db.models.base import Base, utcnow


class ReferenceProperty(Base):
    """One validation suite's results at a reference level, computed once and reused.

    ``key`` is the SHA-256 of the level (engine, method, basis, settings), the
    suite and the suite's settings (structures, supercell, strains …), so a later
    model or campaign checked against the same level finds it here instead of
    paying for the reference again (GPAW phonons take minutes to hours).
    ``values`` holds the suite's properties in the units their names give.
    """

    __tablename__ = "reference_property"

    id: Mapped[int] = mapped_column(primary_key=True)
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id", ondelete="CASCADE"))
    suite: Mapped[str] = mapped_column(String(50))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(Float)
    engine_version: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ValidationRun(Base):
    """One suite run on one head of a model against its reference level, with every check."""

    __tablename__ = "validation_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_artifact_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifact.id", ondelete="SET NULL"), default=None, index=True
    )
    model_sha256: Mapped[str] = mapped_column(String(64))
    model_path: Mapped[str] = mapped_column(String(500))
    head: Mapped[str] = mapped_column(String(100))
    suite: Mapped[str] = mapped_column(String(50))
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id", ondelete="CASCADE"))
    reference_id: Mapped[int] = mapped_column(
        ForeignKey("reference_property.id", ondelete="CASCADE")
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), default=None, index=True
    )
    iteration_index: Mapped[int | None] = mapped_column(Integer, default=None)
    #: One entry per property: name, unit, model, reference, difference, tolerance, passed.
    checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: The model's own property values (E(V) points, phonon bands …) for plots.
    model_values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    passed: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
