"""Deleting a campaign without touching any other campaign's data.

A campaign's own records go: its memberships and picks, candidate scores,
steps and iterations, schedule, GPs with their synthetic labels, training runs
with their model files. Reference data stays: every structure and every label
remains in the database (another campaign, an import or a later campaign may
use them; labels are the expensive part). Only the synthetic copies that no
other campaign holds are removed with the GPs that labeled them. Jobs the
campaign queued stay as the provenance of their labels; its pending jobs are
cancelled unless another campaign waits for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.orm import Session

from interphase.campaign.lock import refuse_if_held
from interphase.campaign.records import find_campaign
from interphase.db import membership
from interphase.db.models import (
    Campaign,
    CampaignSchedule,
    CampaignStep,
    CampaignStructure,
    CandidateScore,
    GPRModel,
    Iteration,
    JobState,
    Label,
    LabelingJob,
    MembershipRole,
    ModelArtifact,
    Structure,
    SyntheticLabel,
    TrainingEpochMetric,
    TrainingRun,
    ValidationRun,
    utcnow,
)
from interphase.db.session import transaction


@dataclass
class Deletion:
    """What deleting a campaign removes (or removed) and what it keeps."""

    name: str
    memberships: int = 0
    iterations: int = 0
    gps: int = 0
    synthetic_labels: int = 0
    synthetic_structures: int = 0
    training_runs: int = 0
    model_files: list[str] = field(default_factory=list)
    jobs_cancelled: int = 0
    structures_kept: int = 0
    labels_kept: int = 0

    def lines(self) -> list[str]:
        return [
            f"campaign {self.name!r}: {self.iterations} iteration(s), {self.memberships} "
            f"memberships, {self.gps} GPs with {self.synthetic_labels} synthetic labels "
            f"({self.synthetic_structures} synthetic copies used by no other campaign), "
            f"{self.training_runs} training run(s) and {len(self.model_files)} model file(s), "
            f"{self.jobs_cancelled} pending job(s) to cancel",
            f"kept: {self.structures_kept} structures and {self.labels_kept} reference labels "
            "it used (other campaigns and later ones can use them)",
        ]


def delete_campaign(url: str | None, name: str, *, dry_run: bool = False) -> Deletion:
    """Delete campaign ``name`` (or, with ``dry_run``, only say what would go).

    Raises
    ------
    CampaignNotFoundError
        No campaign has that name.
    CampaignBusyError
        A live process runs the campaign (stop it first).
    """
    with transaction(url, read_only=dry_run) as session:
        campaign = find_campaign(session, name)
        if not dry_run:
            session.scalars(select(Campaign).where(Campaign.id == campaign.id).with_for_update())
            refuse_if_held(campaign, utcnow())
        found = _plan(session, campaign)
        if not dry_run:
            _delete(session, campaign, found)
    if not dry_run:
        for path in found.model_files:
            Path(path).unlink(missing_ok=True)
    return found


def _synthetic_only_here(campaign_id: int) -> Select[int]:
    """Ids of the campaign's synthetic copies that no other campaign holds."""
    others = select(CampaignStructure.structure_id).where(
        CampaignStructure.campaign_id != campaign_id
    )
    return select(CampaignStructure.structure_id).where(
        CampaignStructure.campaign_id == campaign_id,
        CampaignStructure.role == MembershipRole.synthetic.value,
        CampaignStructure.structure_id.not_in(others),
    )


def _pending_nobody_waits_for(campaign_id: int) -> Select[int]:
    """The campaign's pending jobs that no other campaign picked (and so waits for)."""
    waited = select(CampaignStructure.id).where(
        CampaignStructure.campaign_id != campaign_id,
        CampaignStructure.structure_id == LabelingJob.structure_id,
        CampaignStructure.level_id == LabelingJob.level_id,
    )
    return select(LabelingJob.id).where(
        LabelingJob.campaign_id == campaign_id,
        LabelingJob.state == JobState.pending,
        ~waited.exists(),
    )


def _count(session: Session, model: type[Any], *where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _plan(session: Session, campaign: Campaign) -> Deletion:
    cid = campaign.id
    gps = select(GPRModel.id).where(GPRModel.campaign_id == cid)
    runs = select(TrainingRun.id).where(TrainingRun.campaign_id == cid)
    files = list(
        session.scalars(select(ModelArtifact.path).where(ModelArtifact.training_run_id.in_(runs)))
    )
    files += [
        path
        for path in session.scalars(
            select(TrainingRun.checkpoint_path).where(TrainingRun.id.in_(runs))
        )
        if path
    ]
    kept = select(CampaignStructure.structure_id).where(
        CampaignStructure.campaign_id == cid,
        CampaignStructure.role != MembershipRole.synthetic.value,
    )
    return Deletion(
        name=campaign.name,
        memberships=_count(session, CampaignStructure, CampaignStructure.campaign_id == cid),
        iterations=_count(session, Iteration, Iteration.campaign_id == cid),
        gps=_count(session, GPRModel, GPRModel.campaign_id == cid),
        synthetic_labels=_count(session, SyntheticLabel, SyntheticLabel.gpr_model_id.in_(gps)),
        synthetic_structures=_count(
            session, Structure, Structure.id.in_(_synthetic_only_here(cid))
        ),
        training_runs=_count(session, TrainingRun, TrainingRun.campaign_id == cid),
        model_files=files,
        jobs_cancelled=_count(
            session, LabelingJob, LabelingJob.id.in_(_pending_nobody_waits_for(cid))
        ),
        structures_kept=_count(session, Structure, Structure.id.in_(kept)),
        labels_kept=_count(session, Label, membership.training_label(cid)),
    )


def _delete(session: Session, campaign: Campaign, found: Deletion) -> None:
    cid = campaign.id
    now = utcnow()
    session.execute(
        update(LabelingJob)
        .where(LabelingJob.id.in_(_pending_nobody_waits_for(cid)))
        .values(
            state=JobState.cancelled,
            error_message=f"cancelled: campaign {campaign.name!r} was deleted",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    synthetic = [int(i) for i in session.scalars(_synthetic_only_here(cid))]
    gps = select(GPRModel.id).where(GPRModel.campaign_id == cid)
    session.execute(delete(SyntheticLabel).where(SyntheticLabel.gpr_model_id.in_(gps)))
    session.execute(
        update(CandidateScore).where(CandidateScore.gpr_model_id.in_(gps)).values(gpr_model_id=None)
    )
    session.execute(delete(CandidateScore).where(CandidateScore.campaign_id == cid))
    session.execute(delete(GPRModel).where(GPRModel.campaign_id == cid))
    runs = select(TrainingRun.id).where(TrainingRun.campaign_id == cid)
    session.execute(
        delete(TrainingEpochMetric).where(TrainingEpochMetric.training_run_id.in_(runs))
    )
    # Its validation runs go; references stay (they belong to the level, for every campaign).
    session.execute(delete(ValidationRun).where(ValidationRun.campaign_id == cid))
    artifacts = select(ModelArtifact.id).where(ModelArtifact.training_run_id.in_(runs))
    session.execute(
        update(ValidationRun)
        .where(ValidationRun.model_artifact_id.in_(artifacts))
        .values(model_artifact_id=None)
    )
    session.execute(delete(ModelArtifact).where(ModelArtifact.training_run_id.in_(runs)))
    session.execute(delete(TrainingRun).where(TrainingRun.campaign_id == cid))
    session.execute(delete(CampaignStructure).where(CampaignStructure.campaign_id == cid))
    for start in range(0, len(synthetic), 500):
        chunk = synthetic[start : start + 500]
        session.execute(delete(SyntheticLabel).where(SyntheticLabel.structure_id.in_(chunk)))
        session.execute(
            update(Structure).where(Structure.parent_id.in_(chunk)).values(parent_id=None)
        )
        session.execute(delete(Structure).where(Structure.id.in_(chunk)))
    # Provenance that named the campaign: jobs and structures stay, without it.
    iterations = select(Iteration.id).where(Iteration.campaign_id == cid)
    session.execute(
        update(LabelingJob)
        .where(LabelingJob.campaign_id == cid)
        .values(campaign_id=None, iteration_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Structure)
        .where(Structure.campaign_id == cid)
        .values(campaign_id=None, iteration_id=None)
    )
    session.execute(
        update(Structure).where(Structure.iteration_id.in_(iterations)).values(iteration_id=None)
    )
    session.execute(delete(CampaignStep).where(CampaignStep.campaign_id == cid))
    session.execute(delete(CampaignSchedule).where(CampaignSchedule.campaign_id == cid))
    session.execute(delete(Iteration).where(Iteration.campaign_id == cid))
    session.execute(delete(Campaign).where(Campaign.id == cid))
