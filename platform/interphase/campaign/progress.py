"""How far a running step is: recorded on its ``campaign_step`` row as it runs.

Steps report ``progress(description, done, total)`` (:mod:`interphase.campaign.context`):
the train step after every epoch (``train: epoch``), label and select per
labeling job finished, fit per GP, explore per MD step. :class:`ProgressRecorder`
writes the newest report to the step's row at most once per ``min_interval_s``
(and always when a count reaches its total), each in its own short
transaction, so the dashboard and ``campaign show`` see a long step move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from interphase.campaign.records import StepName
from interphase.db.models import CampaignStep, StepState, utcnow
from interphase.db.session import transaction


class StepProgress(BaseModel):
    """The newest progress report of a step, as stored in ``campaign_step.progress``."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(description="What is counted, e.g. 'train: epoch'.")
    done: int = Field(ge=0, description="Units done so far.")
    total: int | None = Field(default=None, ge=0, description="Units in all; null: unknown.")

    @property
    def text(self) -> str:
        """``train: epoch 12 of 50``; the description alone when nothing is counted yet."""
        if self.total is not None:
            return f"{self.description} {self.done:,} of {self.total:,}"
        return f"{self.description} {self.done:,}" if self.done else self.description

    @classmethod
    def from_row(cls, stored: dict[str, object] | None) -> StepProgress | None:
        """The stored report, or None (no report yet, or one this code cannot read)."""
        if not stored:
            return None
        try:
            return cls.model_validate(stored)
        except ValueError:
            return None


def record_progress(
    url: str | None, campaign_id: int, index: int, step: StepName, progress: StepProgress
) -> None:
    """Store ``progress`` on the step's row while it is running (a finished row is kept)."""
    with transaction(url) as session:
        session.execute(
            update(CampaignStep)
            .where(
                CampaignStep.campaign_id == campaign_id,
                CampaignStep.iteration_index == index,
                CampaignStep.name == step.value,
                CampaignStep.state == StepState.running.value,
            )
            .values(progress=progress.model_dump(mode="json"), progress_at=utcnow())
        )


@dataclass
class ProgressRecorder:
    """A step's progress callback that stores reports, at most one per ``min_interval_s``."""

    url: str | None
    campaign_id: int
    index: int
    step: StepName
    min_interval_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _last: float | None = field(default=None, init=False)

    def __call__(self, description: str, done: int, total: int | None) -> None:
        now = self.clock()
        finished = total is not None and done >= total
        if not finished and self._last is not None and now - self._last < self.min_interval_s:
            return
        self._last = now
        report = StepProgress(description=description, done=max(done, 0), total=total)
        record_progress(self.url, self.campaign_id, self.index, self.step, report)


def _seconds_since(moment: datetime, now: datetime) -> float:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # SQLite: naive UTC
    return max((now - aware).total_seconds(), 0.0)


def running_step_line(session: Session, campaign_id: int) -> str | None:
    """``now: iteration 0 · train: epoch 12 of 50 (running 903 s, progress 2 s ago)``, or None."""
    row = session.scalars(
        select(CampaignStep)
        .where(
            CampaignStep.campaign_id == campaign_id,
            CampaignStep.state == StepState.running.value,
        )
        .order_by(CampaignStep.id.desc())
    ).first()
    if row is None:
        return None
    now = datetime.now(UTC)
    progress = StepProgress.from_row(row.progress)
    what = progress.text if progress is not None else row.name
    timing = f"running {_seconds_since(row.started_at, now):.0f} s"
    if row.progress_at is not None:
        timing += f", progress {_seconds_since(row.progress_at, now):.0f} s ago"
    return f"now: iteration {row.iteration_index} · {what} ({timing})"
