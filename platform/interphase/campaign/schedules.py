"""When campaigns run by themselves: one schedule (cron or interval) per campaign.

The definitions live in the interphase database (table ``campaign_schedule``)
so that ``interphase campaign schedule`` works with no Prefect server running;
``interphase serve`` (``interphase_flows.schedule``) turns the active ones into
Prefect deployments. Cron syntax and next run times are Prefect's business and
are checked there; this module checks everything else and stores the rows.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.records import find_campaign
from interphase.db.models import Campaign, CampaignSchedule, utcnow

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest interval between runs (365 days); rarer runs take a cron expression.
MAX_INTERVAL_SECONDS = 365 * 86400


class ScheduleNotFoundError(LookupError):
    """The campaign has no active schedule."""


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``30s``, ``10m``, ``2h``, ``1d`` or ``1h30m``.

    Raises
    ------
    ValueError
        When ``text`` is not such a duration, is zero or longer than 365 days.
    """
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + unit for n, unit in parts) != compact:
        raise ValueError(
            f"--interval must be a duration such as 30s, 10m, 2h or 1d (or 1h30m); got {text!r}"
        )
    too_long = ValueError(
        f"--interval must be at most 365d; got {text!r} (for rarer runs give --cron, "
        "e.g. '0 2 1 1 *' once a year)"
    )
    if any(len(n.lstrip("0")) > 12 for n, _ in parts):  # before int() of thousands of digits
        raise too_long
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts)
    if seconds < 1:
        raise ValueError(f"--interval must be at least 1s; got {text!r}")
    if seconds > MAX_INTERVAL_SECONDS:
        raise too_long
    return seconds


class ScheduleSpec(BaseModel):
    """One campaign's schedule, as stored and as handed to the Prefect side."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign: str = Field(description="Name of the scheduled campaign.")
    cron: str | None = Field(
        default=None, description="Cron expression, read in `timezone` (five fields)."
    )
    interval_seconds: int | None = Field(
        default=None, ge=1, description="Seconds between runs (ticks from `created_at`)."
    )
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")
    iterations_per_run: int | None = Field(
        default=None, ge=1, description="Each run stops after N iterations (None: until done)."
    )
    created_at: datetime | None = Field(
        default=None, description="When it was recorded (UTC); the anchor of an interval."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"--timezone {value!r} is not a known IANA time zone (e.g. UTC, Europe/Berlin)"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of --cron EXPR and --interval DURATION")
        if self.cron is not None and not self.cron.strip():
            raise ValueError("--cron must not be empty (e.g. --cron '0 2 * * *')")
        return self

    def describe(self) -> str:
        """``every 30s`` or ``cron 0 2 * * * (Europe/Berlin)``."""
        if self.interval_seconds is not None:
            return f"every {format_duration(self.interval_seconds)}"
        return f"cron {self.cron} ({self.timezone})"


def format_duration(seconds: int) -> str:
    """``90`` → ``1m30s``: the shortest spelling :func:`parse_duration` reads back."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def schedule_spec(row: CampaignSchedule, name: str) -> ScheduleSpec:
    """The stored schedule ``row`` of the campaign called ``name``."""
    return ScheduleSpec(
        campaign=name,
        cron=row.cron,
        interval_seconds=row.interval_seconds,
        timezone=row.timezone,
        iterations_per_run=row.iterations_per_run,
        created_at=row.created_at,
    )


def set_schedule(session: Session, spec: ScheduleSpec) -> ScheduleSpec:
    """Record (or replace) the schedule of ``spec.campaign``; returns it as stored.

    Raises :class:`~interphase.campaign.records.CampaignNotFoundError` for an
    unknown campaign.
    """
    campaign = find_campaign(session, spec.campaign)
    row = session.scalar(
        select(CampaignSchedule).where(CampaignSchedule.campaign_id == campaign.id)
    )
    if row is None:
        row = CampaignSchedule(campaign_id=campaign.id)
        session.add(row)
    row.cron, row.interval_seconds = spec.cron, spec.interval_seconds
    row.timezone, row.iterations_per_run = spec.timezone, spec.iterations_per_run
    row.created_at, row.active = utcnow(), True
    session.flush()
    return schedule_spec(row, campaign.name)


def remove_schedule(session: Session, name: str) -> ScheduleSpec:
    """Deactivate the schedule of campaign ``name``; returns what it was."""
    campaign = find_campaign(session, name)
    row = session.scalar(
        select(CampaignSchedule).where(
            CampaignSchedule.campaign_id == campaign.id, CampaignSchedule.active.is_(True)
        )
    )
    if row is None:
        raise ScheduleNotFoundError(f"campaign {name!r} has no schedule; nothing to remove")
    row.active = False
    return schedule_spec(row, campaign.name)


def active_schedules(session: Session) -> list[ScheduleSpec]:
    """Every active schedule, by campaign name."""
    rows = session.execute(
        select(CampaignSchedule, Campaign.name)
        .join(Campaign, Campaign.id == CampaignSchedule.campaign_id)
        .where(CampaignSchedule.active.is_(True))
        .order_by(Campaign.name)
    ).all()
    return [schedule_spec(row, name) for row, name in rows]
