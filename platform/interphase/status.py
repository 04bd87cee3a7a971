"""Counts for ``interphase status`` and the dashboard."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from interphase.db.models import (
    Campaign,
    CampaignStructure,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
)
from interphase.db.session import require_schema, transaction

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
