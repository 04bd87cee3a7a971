"""A campaign runs in one process at a time: a lease on the campaign row.

The runner takes the lock (``lock_holder`` = ``host:pid:tag``, an expiry) and
renews it from a heartbeat thread. A second ``run``/``resume`` is refused with
the holder's name. A holder that died stops renewing: its lock expires like a
job lease, and a holder on this host whose process is gone is taken over at
once.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import select

from interphase.db.models import Campaign, utcnow
from interphase.db.session import transaction
from interphase.leases import Heartbeat, holder_name

#: Default lock lease (s): a dead runner's campaign can be resumed this soon.
LOCK_LEASE_S = 30.0


class CampaignBusyError(RuntimeError):
    """Another live process runs the campaign."""


def _dead_here(holder: str) -> bool:
    """Whether ``holder`` is a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def refuse_if_held(campaign: Campaign, now: datetime) -> None:
    """Raise :class:`CampaignBusyError` while a live process holds the campaign's lock."""
    holder, expires = campaign.lock_holder, campaign.lock_expires_at
    if holder is None or expires is None:
        return
    if expires.tzinfo is None:  # SQLite drops the zone
        expires = expires.replace(tzinfo=now.tzinfo)
    if expires > now and not _dead_here(holder):
        left = (expires - now).total_seconds()
        raise CampaignBusyError(
            f"campaign {campaign.name!r} is being run by {holder} "
            f"(lock renewed {campaign.lock_heartbeat_at:%H:%M:%S} UTC, expires in "
            f"{left:.0f} s unless renewed); stop it with "
            f"`interphase campaign stop {campaign.name}`"
        )


class CampaignLock:
    """Hold a campaign's lock while the block runs (renewed every ``lease_s / 3``)."""

    def __init__(self, url: str | None, campaign_id: int, lease_s: float = LOCK_LEASE_S) -> None:
        self.url, self.campaign_id, self.lease_s = url, campaign_id, lease_s
        self.holder = holder_name()
        self._heartbeat = Heartbeat(self._renew, interval_s=lease_s / 3, name="campaign-lock")

    @property
    def lost(self) -> bool:
        """True once another process took the lock over (this one's lease had expired)."""
        return not self._heartbeat.alive

    def acquire(self) -> None:
        now = utcnow()
        with transaction(self.url) as session:
            campaign = session.scalars(
                select(Campaign).where(Campaign.id == self.campaign_id).with_for_update()
            ).one()
            refuse_if_held(campaign, now)
            campaign.lock_holder = self.holder
            campaign.lock_expires_at = now + timedelta(seconds=self.lease_s)
            campaign.lock_heartbeat_at = now
        self._heartbeat.start()

    def _renew(self) -> bool:
        try:
            with transaction(self.url) as session:
                campaign = session.get_one(Campaign, self.campaign_id)
                if campaign.lock_holder != self.holder:
                    return False
                now = utcnow()
                campaign.lock_expires_at = now + timedelta(seconds=self.lease_s)
                campaign.lock_heartbeat_at = now
        except Exception:  # a transient database error: the next beat retries
            pass
        return True

    def release(self) -> None:
        self._heartbeat.stop()
        with transaction(self.url) as session:
            campaign = session.get_one(Campaign, self.campaign_id)
            if campaign.lock_holder == self.holder:
                campaign.lock_holder = None
                campaign.lock_expires_at = None

    def __enter__(self) -> CampaignLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
