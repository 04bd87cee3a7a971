"""The provenance database: every structure, job, label and model, with lineage.

Small queryable metadata lives in columns; bulk arrays (positions, gradients,
charges) are raw bytes (:class:`~interphase.db.types.NumpyArray`). Units are
in the column names.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from interphase.db.types import NumpyArray

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


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
    state: Mapped[str] = mapped_column(String(20), default=CampaignState.created.value)
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


class Iteration(Base):
    """One pass of the active-learning loop within a campaign."""

    __tablename__ = "iteration"
    __table_args__ = (UniqueConstraint("campaign_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="running")
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
    state: Mapped[str] = mapped_column(String(20), default=StepState.running.value)
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
    role: Mapped[str] = mapped_column(String(20))
    level_id: Mapped[int | None] = mapped_column(
        ForeignKey("level_of_theory.id", ondelete="CASCADE"), default=None
    )
    #: The iteration in which it joined (0 for seed data).
    iteration_index: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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


#: States of a job still in play; at most one such job per structure and level.
OPEN_JOB_STATES = ("pending", "running")
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
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, native_enum=False, length=20), default=JobState.pending
    )
    reason: Mapped[JobReason] = mapped_column(
        Enum(JobReason, native_enum=False, length=20), default=JobReason.initial
    )
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
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, native_enum=False, length=20), default=JobState.running
    )
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


class TrainingRun(Base):
    """A training of the multi-head network on an exact dataset snapshot."""

    __tablename__ = "training_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    heads: Mapped[list[Any]] = mapped_column(JSON, default=list)
    label_ids: Mapped[np.ndarray] = mapped_column(NumpyArray("<i8"))
    synthetic_label_ids: Mapped[np.ndarray] = mapped_column(NumpyArray("<i8"))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running")
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
