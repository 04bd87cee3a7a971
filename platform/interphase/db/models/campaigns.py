"""Campaigns: their iterations, steps, schedules, candidate scores and memberships."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interphase.db.models.base import Base, enum_column, utcnow


class CampaignState(enum.StrEnum):
    created = "created"
    running = "running"
    stopped = "stopped"
    finished = "finished"


class Campaign(Base):
    """An active-learning campaign: its configuration, state, lock and why it stopped."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # 0005: the campaign loop.
    state: Mapped[str] = mapped_column(enum_column(CampaignState), default=CampaignState.created)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    #: The stopping rule that ended it (max_iterations, uncertain_fraction, label_budget,
    #: wall_clock, stop_requested, interrupted) and its numbers.
    stop_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    stop_detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Set by ``campaign stop``: the runner stops after its current step.
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The process running it (``host:pid:tag``) and until when that claim holds.
    lock_holder: Mapped[str | None] = mapped_column(String(200), default=None)
    lock_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    lock_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Wall-clock seconds spent running, summed over runs and resumes.
    run_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    iterations: Mapped[list[Iteration]] = relationship(
        back_populates="campaign", order_by="Iteration.index"
    )


class IterationStatus(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"


class Iteration(Base):
    """One pass of the active-learning loop within a campaign."""

    __tablename__ = "iteration"
    __table_args__ = (UniqueConstraint("campaign_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(
        enum_column(IterationStatus), default=IterationStatus.running
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)

    campaign: Mapped[Campaign] = relationship(back_populates="iterations")


class StepState(enum.StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class CampaignStep(Base):
    """One step of one iteration: recorded with its outputs, so a resume skips it."""

    __tablename__ = "campaign_step"
    __table_args__ = (UniqueConstraint("campaign_id", "iteration_index", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"))
    iteration_index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(enum_column(StepState), default=StepState.running)
    #: How many times the step was started (a resume after a crash starts it again).
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Wall-clock seconds of the successful attempt, and how much of it engines,
    #: fits and training took (the rest is orchestration).
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    compute_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    #: What it produced: ids and counts (JSON).
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # 0008: how far a running step is (StepProgress as JSON) and when it said so.
    progress: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    progress_at: Mapped[datetime | None] = mapped_column(default=None)


class CampaignSchedule(Base):
    """When a campaign runs by itself: a cron expression or an interval, in a time zone.

    Kept here, not only in Prefect, because the embedded default has no Prefect
    server until ``interphase serve`` starts one.
    """

    __tablename__ = "campaign_schedule"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), unique=True
    )
    #: Exactly one of ``cron`` and ``interval_seconds`` is set.
    cron: Mapped[str | None] = mapped_column(String(200), default=None)
    interval_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    #: IANA name (``Europe/Berlin``); cron fields are read in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Each scheduled run stops after this many iterations (``None``: until a stopping rule).
    iterations_per_run: Mapped[int | None] = mapped_column(Integer, default=None)
    #: Also the anchor of an interval: ticks fall at ``created_at + k * interval_seconds``.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CandidateScore(Base):
    """A candidate's GP uncertainty in one iteration, and whether it was picked."""

    __tablename__ = "candidate_score"
    __table_args__ = (Index("ix_candidate_score_iteration_id", "iteration_id", "level_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iteration.id", ondelete="CASCADE"))
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id"))
    gpr_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("gpr_model.id", ondelete="SET NULL"), default=None
    )
    #: Predicted energy std per atom (Hartree); NULL when no GP could judge it (infinite).
    std_per_atom_hartree: Mapped[float | None] = mapped_column(Float, default=None)
    #: Which score: "select" (the pool labeled this iteration) or "pool" (the next
    #: iteration's candidates, judged by this iteration's refitted GPs).
    stage: Mapped[str] = mapped_column(String(20), default="select")
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    picked: Mapped[bool] = mapped_column(Boolean, default=False)


class MembershipRole(enum.StrEnum):
    """Why a structure belongs to a campaign (a structure may hold several roles)."""

    #: Generated or explored for an iteration: scored, maybe labeled.
    candidate = "candidate"
    #: The campaign's fixed test split: never trained or fitted on by this campaign.
    test = "test"
    #: Labeled for the campaign at one level (computed, or an existing label reused).
    picked = "picked"
    #: A snapshot of the campaign's exploration MD (a candidate of the next iteration).
    explored = "explored"
    #: A displaced copy labeled by one of the campaign's GPs.
    synthetic = "synthetic"
    #: Existing labeled data the campaign started from (``seed_data``, ``data import --campaign``).
    seed = "seed"


#: Roles whose label at the membership's level the campaign trains and fits on.
TRAINING_ROLES = (MembershipRole.picked.value, MembershipRole.seed.value)


class CampaignStructure(Base):
    """A structure's membership of a campaign: its role, the iteration it joined, its level.

    Structures are stored once (by content hash) and shared: many campaigns may
    hold the same structure, each with its own roles. ``level_id`` is set for
    ``picked`` and ``seed`` (the level whose label the campaign uses) and NULL
    for the other roles. Migration 0007 replaced ``Structure.campaign_id`` as
    the owner and the ``campaign_test_structure`` table with this one.
    """

    __tablename__ = "campaign_structure"
    __table_args__ = (
        Index(
            "uq_campaign_structure_role",
            "campaign_id",
            "structure_id",
            "role",
            text("coalesce(level_id, 0)"),
            unique=True,
        ),
        Index("ix_campaign_structure_structure_id", "structure_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(enum_column(MembershipRole))
    level_id: Mapped[int | None] = mapped_column(
        ForeignKey("level_of_theory.id", ondelete="CASCADE"), default=None
    )
    #: The iteration in which it joined (0 for seed data).
    iteration_index: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
