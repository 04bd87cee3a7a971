"""Counts for ``interphase status``, ``interphase jobs run`` and the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.db.models import (
    Campaign,
    CampaignStructure,
    JobAttempt,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
)
from interphase.db.session import require_schema, transaction

if TYPE_CHECKING:
    from interphase.labeling.queue.run import DrainReport

StatusTable = tuple[str, tuple[str, ...], list[tuple[Any, ...]]]


def collect_status(url: str | None = None) -> list[StatusTable]:
    """Three tables: structures/jobs per campaign, labels per level, jobs by state."""
    require_schema(url)
    with transaction(url, read_only=True) as session:
        structures = dict(
            session.execute(
                select(
                    CampaignStructure.campaign_id,
                    func.count(func.distinct(CampaignStructure.structure_id)),
                ).group_by(CampaignStructure.campaign_id)
            ).all()
        )
        campaigns = session.execute(select(Campaign.id, Campaign.name).order_by(Campaign.id)).all()
        by_campaign = [(name, structures.get(cid, 0)) for cid, name in campaigns]
        outside = session.scalar(
            select(func.count())
            .select_from(Structure)
            .where(Structure.id.not_in(select(CampaignStructure.structure_id)))
        )
        if outside:
            by_campaign.append(("(imported / no campaign)", int(outside)))
        by_level = session.execute(
            select(LevelOfTheory.name, func.count(Label.id))
            .join(Label, Label.level_id == LevelOfTheory.id, isouter=True)
            .group_by(LevelOfTheory.name)
            .order_by(LevelOfTheory.name)
        ).all()
        by_state = session.execute(
            select(LevelOfTheory.name, LabelingJob.state, func.count())
            .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
            .group_by(LevelOfTheory.name, LabelingJob.state)
            .order_by(LevelOfTheory.name, LabelingJob.state)
        ).all()
    return [
        ("structures by campaign", ("campaign", "structures"), [tuple(r) for r in by_campaign]),
        ("labels by level of theory", ("level", "labels"), [tuple(r) for r in by_level]),
        (
            "labeling jobs by state",
            ("level", "state", "jobs"),
            [(lvl, str(state), n) for lvl, state, n in by_state],
        ),
    ]


def last_attempt_id(session: Session) -> int:
    """The id of the newest job attempt (0 when there is none): where a drain starts."""
    return int(session.scalar(select(func.max(JobAttempt.id))) or 0)


def drain_report(
    session: Session,
    after_attempt_id: int,
    *,
    engine: str | None = None,
    level_id: int | None = None,
) -> DrainReport:
    """Outcome counts of the attempts made after ``after_attempt_id``, read from the database.

    The same counts a single worker's :class:`DrainReport` keeps, for a drain by
    several worker processes: per attempt, succeeded (or already labeled: it
    stored nothing), failed for good, failed and retried, or abandoned (its
    lease expired). Attempts of other workers at the same engine and level in
    that time count too.
    """
    from interphase.labeling.queue.outcome import Outcome, already_labeled_note
    from interphase.labeling.queue.retry import LEASE_EXPIRED
    from interphase.labeling.queue.run import DrainReport

    already = already_labeled_note(0).split(" (")[0]  # what record_already_labeled notes
    query = (
        select(
            JobAttempt.state,
            JobAttempt.number,
            JobAttempt.error_class,
            JobAttempt.error_message,
            LabelingJob.state,
            LabelingJob.attempt,
        )
        .join(LabelingJob, JobAttempt.job_id == LabelingJob.id)
        .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
        .where(JobAttempt.id > after_attempt_id, JobAttempt.state != JobState.running)
    )
    if engine is not None:
        query = query.where(LevelOfTheory.engine == engine)
    if level_id is not None:
        query = query.where(LabelingJob.level_id == level_id)
    report = DrainReport()
    for state, number, error_class, message, job_state, job_attempt in session.execute(query):
        if state == JobState.succeeded:
            labeled = (message or "").startswith(already)
            report.add(Outcome.already_labeled if labeled else Outcome.succeeded)
        elif error_class == LEASE_EXPIRED:
            report.add(Outcome.abandoned)
        elif job_state == JobState.failed and number == job_attempt:
            report.add(Outcome.failed)
        else:
            report.add(Outcome.retried)
    return report
