"""Schedules for the dashboard: the stored rows, with their ticks and next run from Prefect.

The rows (``campaign_schedule``) are the interphase database's; what Prefect
did with them (ticks, next run, paused) comes from
:mod:`interphase.dashboard.prefect_ticks`, or is marked unknown when no Prefect
server answers.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.schedules import ScheduleSpec, schedule_spec
from interphase.campaign.ticks import TickOutcome, TickRun
from interphase.dashboard.prefect_ticks import Deployment, PrefectSource, PrefectTicks
from interphase.db.models import Campaign, CampaignSchedule

#: Ticks listed per schedule, newest first.
TICKS_SHOWN = 10


@dataclass(frozen=True)
class ScheduleRow:
    """One stored schedule and its campaign."""

    campaign_id: int
    campaign_state: str
    spec: ScheduleSpec
    active: bool  # False once unscheduled (the row stays)


def schedule_rows(session: Session) -> list[ScheduleRow]:
    """Every stored schedule: active ones first, then by campaign name."""
    rows = session.execute(
        select(CampaignSchedule, Campaign.id, Campaign.name, Campaign.state)
        .join(Campaign, Campaign.id == CampaignSchedule.campaign_id)
        .order_by(CampaignSchedule.active.desc(), Campaign.name)
    ).all()
    return [
        ScheduleRow(
            campaign_id=campaign_id,
            campaign_state=state,
            spec=schedule_spec(row, name),
            active=row.active,
        )
        for row, campaign_id, name, state in rows
    ]


class ScheduleStatus(enum.StrEnum):
    active = "active"
    paused = "paused on Prefect"  # its deployment, or every schedule of it
    unscheduled = "unscheduled"  # ``campaign unschedule``: the row stays, inactive


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as the page shows it."""

    row: ScheduleRow
    status: ScheduleStatus
    next_run: datetime | None
    next_run_note: str  # why there is no time, or where it comes from
    ticks: list[TickRun]  # newest first, at most TICKS_SHOWN
    counts: Counter[TickOutcome]  # over every tick read for this campaign
    n_ticks: int


def schedule_views(rows: list[ScheduleRow], prefect: PrefectTicks | None) -> list[ScheduleView]:
    """The rows with what Prefect reported (``prefect`` None: no server known)."""
    views = []
    for row in rows:
        ticks = prefect.of(row.spec.campaign) if prefect is not None else []
        deployment = prefect.deployments.get(row.spec.campaign) if prefect is not None else None
        next_run, note = _next_run(row, prefect, deployment)
        views.append(
            ScheduleView(
                row=row,
                status=_status(row, deployment),
                next_run=next_run,
                next_run_note=note,
                ticks=ticks[:TICKS_SHOWN],
                counts=Counter(tick.outcome for tick in ticks),
                n_ticks=len(ticks),
            )
        )
    return views


def _status(row: ScheduleRow, deployment: Deployment | None) -> ScheduleStatus:
    if not row.active:
        return ScheduleStatus.unscheduled
    if deployment is not None and deployment.paused:
        return ScheduleStatus.paused
    return ScheduleStatus.active


def _next_run(
    row: ScheduleRow, prefect: PrefectTicks | None, deployment: Deployment | None
) -> tuple[datetime | None, str]:
    """The next tick Prefect has scheduled, or why there is none to show."""
    if not row.active:
        return None, "none (unscheduled)"
    if prefect is None:
        return None, "unknown (no Prefect server is up; interphase serve runs the schedules)"
    if prefect.error is not None:
        return None, "unknown (Prefect server not reachable)"
    if deployment is None:
        if prefect.api.source is PrefectSource.serve:
            return None, "none: not served (restart interphase serve to pick it up)"
        return None, "none: no deployment on Prefect (run interphase campaign schedule again)"
    if deployment.paused:
        return None, "none (paused on Prefect)"
    if deployment.next_run is None:
        return None, "none scheduled on Prefect yet"
    return deployment.next_run, "scheduled on Prefect"
