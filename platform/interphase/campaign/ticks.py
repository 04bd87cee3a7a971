"""Ticks of scheduled campaigns: the flow they run, how each one ended, where serve's API is.

A tick is one flow run of :data:`FLOW_NAME` on a Prefect server. This module
holds what readers of ticks share without importing Prefect (slow to import,
and it reads its settings when first imported): the CLI and ``interphase
serve`` list ticks through ``interphase_flows.schedule``, the dashboard reads
them over Prefect's REST API.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

#: The flow of every scheduled campaign; its deployments are named after the campaigns.
FLOW_NAME = "interphase-scheduled-campaign"
#: What Prefect writes on a tick it cancelled for the concurrency limit.
CONCURRENCY_MESSAGE = "Deployment concurrency limit reached."
#: Prefect state types of a tick that has ended.
FINAL_STATES = ("COMPLETED", "CANCELLED", "FAILED", "CRASHED")


class TickOutcome(enum.StrEnum):
    """How a tick went, in the words of a schedule's reader."""

    #: Started and not ended yet.
    running = "running"
    #: Completed: it ran iterations, or found the campaign finished (nothing to do).
    ran = "ran"
    #: Cancelled before doing anything: a run was still going, or the campaign was held.
    skipped = "skipped"
    #: Cancelled while running (interrupted); the next tick or a resume goes on.
    cancelled = "cancelled"
    #: Failed or crashed; ``campaign resume`` after fixing the cause.
    failed = "failed"


@dataclass(frozen=True)
class TickRun:
    """One flow run of a scheduled campaign, as Prefect's API reports it."""

    id: UUID
    campaign: str
    state: str  # Prefect's state type: SCHEDULED, RUNNING, COMPLETED, CANCELLED, FAILED, ...
    state_name: str
    message: str
    scheduled_at: datetime | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def skipped(self) -> bool:
        """Cancelled before doing anything: the previous run was still going."""
        return self.state == "CANCELLED" and (
            CONCURRENCY_MESSAGE in self.message or self.message.startswith("skipped:")
        )

    @property
    def outcome(self) -> TickOutcome:
        if self.skipped:
            return TickOutcome.skipped
        if self.state == "COMPLETED":
            return TickOutcome.ran
        if self.state == "CANCELLED":
            return TickOutcome.cancelled
        if self.state in ("FAILED", "CRASHED"):
            return TickOutcome.failed
        return TickOutcome.running


def serve_info_path(data_dir: Path) -> Path:
    """Where a running ``interphase serve`` names its Prefect API URL and pid."""
    return data_dir / "prefect" / "serve.json"


def running_serve_api(data_dir: Path) -> str | None:
    """The API URL of a live ``interphase serve`` on this data directory, if any."""
    path = serve_info_path(data_dir)
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(info["api_url"])
