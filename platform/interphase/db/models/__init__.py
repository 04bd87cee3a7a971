"""The provenance database: every structure, job, label and model, with lineage.

Small queryable metadata lives in columns; bulk arrays (positions, gradients,
charges) are raw bytes (:class:`~interphase.db.types.NumpyArray`). Units are
in the column names. Statuses are string enums stored as their values
(:func:`~interphase.db.models.base.enum_column`). One module per concern;
this package exports every table, so ``Base.metadata`` holds them all.
"""

from __future__ import annotations

from interphase.db.models.base import NAMING, Base, enum_column, utcnow
from interphase.db.models.campaigns import (
    TRAINING_ROLES,
    Campaign,
    CampaignSchedule,
    CampaignState,
    CampaignStep,
    CampaignStructure,
    CandidateScore,
    Iteration,
    IterationStatus,
    MembershipRole,
    StepState,
)
from interphase.db.models.jobs import OPEN_JOB_STATES, JobAttempt, JobReason, JobState, LabelingJob
from interphase.db.models.labels import GPRModel, Label, SyntheticLabel
from interphase.db.models.structures import LevelOfTheory, Structure
from interphase.db.models.training import (
    ModelArtifact,
    TrainingEpochMetric,
    TrainingRun,
    TrainingStatus,
)
from interphase.db.models.validation import ReferenceProperty, ValidationRun

__all__ = [
    "NAMING",
    "OPEN_JOB_STATES",
    "TRAINING_ROLES",
    "Base",
    "Campaign",
    "CampaignSchedule",
    "CampaignState",
    "CampaignStep",
    "CampaignStructure",
    "CandidateScore",
    "GPRModel",
    "Iteration",
    "IterationStatus",
    "JobAttempt",
    "JobReason",
    "JobState",
    "Label",
    "LabelingJob",
    "LevelOfTheory",
    "MembershipRole",
    "ModelArtifact",
    "ReferenceProperty",
    "StepState",
    "Structure",
    "SyntheticLabel",
    "TrainingEpochMetric",
    "TrainingRun",
    "TrainingStatus",
    "ValidationRun",
    "enum_column",
    "utcnow",
]
