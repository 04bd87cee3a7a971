"""Campaign rows and job assignment for the executor tests."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select, update

from interphase.db.models import Campaign, JobAttempt, JobState, Label, LabelingJob
from interphase.db.session import transaction


def make_campaign(url: str, name: str) -> int:
    """A campaign row named ``name``; its id."""
    with transaction(url) as session:
        campaign = Campaign(name=name, config={})
        session.add(campaign)
        session.flush()
        return int(campaign.id)


def assign_campaign(url: str, job_ids: list[int], campaign_id: int) -> None:
    """Make ``job_ids`` jobs of the campaign."""
    with transaction(url) as session:
        session.execute(
            update(LabelingJob).where(LabelingJob.id.in_(job_ids)).values(campaign_id=campaign_id)
        )


def outcome(url: str, job_ids: list[int]) -> tuple[dict[int, JobState], Counter[int], Counter[int]]:
    """(state per job, successful attempts per job, labels per structure of these jobs)."""
    with transaction(url) as session:
        jobs = session.scalars(select(LabelingJob).where(LabelingJob.id.in_(job_ids))).all()
        states = {job.id: job.state for job in jobs}
        structures = {job.structure_id for job in jobs}
        successes = Counter(
            session.scalars(
                select(JobAttempt.job_id).where(
                    JobAttempt.job_id.in_(job_ids),
                    JobAttempt.error_class.is_(None),
                    JobAttempt.finished_at.is_not(None),
                )
            ).all()
        )
        labels = Counter(
            session.scalars(select(Label.structure_id).where(Label.structure_id.in_(structures)))
        )
    return states, successes, labels
