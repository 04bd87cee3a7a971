"""What a step needs to run: the campaign, its iteration, a seed, progress and an executor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from interphase.campaign.config import CampaignConfig
from interphase.campaign.records import StepName, complete_step, derived_seed
from interphase.campaign.steps.contract import StepOutputs
from interphase.execution import Executor
from interphase.labeling.queue.worker_options import WorkerOptions

T = TypeVar("T")
R = TypeVar("R")

#: ``progress(description, done, total)``; total None while unknown.
Progress = Callable[[str, int, int | None], None]


def no_progress(description: str, done: int, total: int | None) -> None:
    return None


@dataclass
class StepContext:
    """One step of one iteration of one campaign."""

    url: str | None
    campaign_id: int
    campaign_name: str
    config: CampaignConfig
    iteration: int
    iteration_id: int
    step: StepName
    artifacts_dir: Path
    executor: Executor
    workers: int
    #: Shown on the console and stored on the step's row (``campaign_step.progress``).
    progress: Progress = no_progress
    #: Shown only: for reports made inside an open write transaction, where storing
    #: them (a second writer) would wait for that transaction on SQLite.
    display_progress: Progress = no_progress
    #: The campaign's fixed test split (never fitted, trained or explored from).
    test_ids: frozenset[int] = frozenset()
    #: Seconds spent in engines, fits and training (the rest is orchestration).
    compute_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def seed(self, *parts: object) -> int:
        """A seed for this step (and ``parts``), the same on every run of the campaign."""
        return derived_seed(self.config.seed, self.iteration, self.step.value, *parts)

    @contextmanager
    def computing(self) -> Iterator[None]:
        """Count the block's time as compute (engines, fits, training)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.compute_seconds += time.perf_counter() - start

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def complete(self, session: Session, outputs: StepOutputs) -> None:
        """Record this step as succeeded with ``outputs``, in the outputs' transaction."""
        complete_step(
            session,
            self.campaign_id,
            self.iteration,
            self.step,
            outputs.model_dump(mode="json"),
            seconds=self.seconds,
            compute_seconds=self.compute_seconds,
        )

    def worker_options(self) -> WorkerOptions:
        return self.config.labeling.worker_options()
