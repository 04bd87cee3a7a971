"""Structures, stored once by content hash, and the levels of theory they are labeled at."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interphase.db.models.base import Base, utcnow
from interphase.db.types import NumpyArray

if TYPE_CHECKING:
    from interphase.db.models.labels import Label


class Structure(Base):
    """An atomic structure with its origin (generator, parameters, seed, parent)."""

    __tablename__ = "structure"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    n_atoms: Mapped[int] = mapped_column(Integer)
    formula: Mapped[str] = mapped_column(String(200), index=True)
    subset_key: Mapped[str] = mapped_column(String(250), index=True)
    numbers: Mapped[np.ndarray] = mapped_column(NumpyArray("<i2"))
    positions_angstrom: Mapped[np.ndarray] = mapped_column(NumpyArray("<f8", (3,)))
    cell_angstrom: Mapped[np.ndarray | None] = mapped_column(NumpyArray("<f8", (3,)))
    pbc: Mapped[str] = mapped_column(String(3), default="nnn")  # e.g. "ppp", "ppn"
    charge: Mapped[int] = mapped_column(Integer, default=0)
    multiplicity: Mapped[int] = mapped_column(Integer, default=1)
    generator: Mapped[str] = mapped_column(String(100), index=True)
    generator_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("structure.id", ondelete="SET NULL"), index=True, default=None
    )
    source_key: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Provenance only: the campaign and iteration that first stored it. Which
    #: campaigns use it is :class:`CampaignStructure` (migration 0007).
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True, default=None
    )
    iteration_id: Mapped[int | None] = mapped_column(
        ForeignKey("iteration.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Structure | None] = relationship(remote_side=[id])
    labels: Mapped[list[Label]] = relationship(back_populates="structure")

    @property
    def pbc_flags(self) -> tuple[bool, bool, bool]:
        return (self.pbc[0] == "p", self.pbc[1] == "p", self.pbc[2] == "p")


class LevelOfTheory(Base):
    """A level of theory; its name is the dataset label key (e.g. ``PBE-D3``)."""

    __tablename__ = "level_of_theory"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    engine: Mapped[str | None] = mapped_column(String(50), default=None)
    method: Mapped[str | None] = mapped_column(String(100), default=None)
    basis: Mapped[str | None] = mapped_column(String(100), default=None)
    periodic: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Per-element reference energies (Hartree) for atomization energies.
    reference_energies_hartree: Mapped[dict[str, Any]] = mapped_column(default=dict)
