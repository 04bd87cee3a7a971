"""Campaigns and their iterations in the provenance database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from interphase.db.api import get_or_create_level
from interphase.db.models import Campaign, Iteration, LevelOfTheory, utcnow
from interphase.db.session import transaction


class CampaignExistsError(ValueError):
    """A campaign of that name is already recorded."""


def create_campaign(url: str | None, name: str, config: dict[str, Any], levels: list[str]) -> int:
    """Record a new campaign (and its levels of theory); returns its id."""
    with transaction(url) as session:
        if session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
            raise CampaignExistsError(
                f"a campaign named {name!r} exists already; choose another name"
            )
        campaign = Campaign(name=name, config=config)
        session.add(campaign)
        for level in levels:
            get_or_create_level(session, level)
        session.flush()
        return campaign.id


def start_iteration(url: str | None, campaign_id: int) -> int:
    """Open the next iteration of a campaign; returns its id."""
    with transaction(url) as session:
        last = session.scalar(
            select(func.max(Iteration.index)).where(Iteration.campaign_id == campaign_id)
        )
        iteration = Iteration(campaign_id=campaign_id, index=0 if last is None else last + 1)
        session.add(iteration)
        session.flush()
        return iteration.id


def finish_iteration(
    url: str | None, iteration_id: int, summary: dict[str, Any], status: str = "succeeded"
) -> None:
    """Close an iteration with its summary."""
    with transaction(url) as session:
        iteration = session.get_one(Iteration, iteration_id)
        iteration.status = status
        iteration.summary = summary
        iteration.finished_at = utcnow()


def level_id(url: str | None, name: str) -> int:
    """Id of the level of theory called ``name``."""
    with transaction(url) as session:
        return session.scalars(select(LevelOfTheory.id).where(LevelOfTheory.name == name)).one()
