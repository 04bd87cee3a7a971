"""Labeling jobs and their attempts: the queue's rows."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interphase.db.models.base import Base, enum_column, utcnow

if TYPE_CHECKING:
    from interphase.db.models.structures import LevelOfTheory, Structure


class JobState(enum.StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class JobReason(enum.StrEnum):
    initial = "initial"
    uncertainty = "uncertainty"
    resubmit = "resubmit"


#: States of a job still in play; at most one such job per structure and level.
OPEN_JOB_STATES = (JobState.pending.value, JobState.running.value)
_OPEN_JOB = text("state IN ('pending', 'running')")


class LabelingJob(Base):
    """A request to label one structure at one level; its attempts are the history.

    At most one open (pending or running) job per structure and level, enforced
    by a partial unique index (migration 0004).
    """

    __tablename__ = "labeling_job"
    __table_args__ = (
        Index("ix_labeling_job_state_level", "state", "level_id"),
        Index("ix_labeling_job_state_lease", "state", "lease_expires_at"),
        Index(
            "uq_labeling_job_open_structure_level",
            "structure_id",
            "level_id",
            unique=True,
            sqlite_where=_OPEN_JOB,
            postgresql_where=_OPEN_JOB,
        ),
        # The dashboard's filters and pages (migration 0004d).
        Index("ix_labeling_job_state_id", "state", "id"),
        Index("ix_labeling_job_error_class_id", "error_class", "id"),
        Index("ix_labeling_job_iteration_id", "iteration_id", "id"),
        Index("ix_labeling_job_campaign_updated", "campaign_id", "updated_at"),
        Index("ix_labeling_job_structure_id", "structure_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    structure_id: Mapped[int] = mapped_column(ForeignKey("structure.id", ondelete="CASCADE"))
    level_id: Mapped[int] = mapped_column(ForeignKey("level_of_theory.id"))
    state: Mapped[JobState] = mapped_column(enum_column(JobState), default=JobState.pending)
    reason: Mapped[JobReason] = mapped_column(enum_column(JobReason), default=JobReason.initial)
    #: Why the job exists beyond the reason: GP model id, predicted std, threshold ...
    reason_detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_class: Mapped[str | None] = mapped_column(String(50), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True, default=None
    )
    iteration_id: Mapped[int | None] = mapped_column(
        ForeignKey("iteration.id", ondelete="SET NULL"), default=None
    )
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Last lease renewal by the running worker (migration 0002).
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Why a job went back to pending: retry, resubmit, lease-expired or interrupted (0002).
    requeued_by: Mapped[str | None] = mapped_column(String(20), default=None)
    #: Attempts before the current retry budget (migration 0004): the retry policy
    #: counts ``attempt - budget_start_attempt``; a resubmit moves it to ``attempt``.
    budget_start_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    structure: Mapped[Structure] = relationship()
    level: Mapped[LevelOfTheory] = relationship()
    attempts: Mapped[list[JobAttempt]] = relationship(
        back_populates="job", order_by="JobAttempt.number"
    )


class JobAttempt(Base):
    """One execution of a labeling job: what ran, where, how long, and how it ended."""

    __tablename__ = "job_attempt"
    __table_args__ = (UniqueConstraint("job_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("labeling_job.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[JobState] = mapped_column(enum_column(JobState), default=JobState.running)
    engine: Mapped[str] = mapped_column(String(50))
    engine_version: Mapped[str | None] = mapped_column(String(50), default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    host: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Added in migration 0002: who ran it, how it was started and how its process ended.
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    trigger: Mapped[str | None] = mapped_column(String(20), default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    wall_time_s: Mapped[float | None] = mapped_column(Float, default=None)
    error_class: Mapped[str | None] = mapped_column(String(50), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    log_tail: Mapped[str | None] = mapped_column(Text, default=None)

    job: Mapped[LabelingJob] = relationship(back_populates="attempts")
