"""What a step needs to run: the campaign, its iteration, a seed, progress and an executor."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from interphase.campaign.config import CampaignConfig
from interphase.campaign.records import StepName, derived_seed
from interphase.labeling.options import WorkerOptions
from interphase.labeling.workers import die_with

T = TypeVar("T")
R = TypeVar("R")

#: ``progress(description, done, total)``; total None while unknown.
Progress = Callable[[str, int, int | None], None]


def no_progress(description: str, done: int, total: int | None) -> None:
    return None


class Executor(Protocol):
    """Where labeling jobs and GP fits run."""

    name: str

    def run_labeling(
        self,
        url: str | None,
        *,
        campaign_id: int | None,
        workers: int,
        options: WorkerOptions,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Drain the campaign's open labeling jobs; return when none is open."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, possibly elsewhere; results in input order."""


def _call_in_child(args: tuple[Callable[[Any], Any], Any]) -> Any:
    import torch

    torch.set_num_threads(1)  # one core per worker process
    fn, item = args
    return fn(item)


@dataclass
class LocalExecutor:
    """Worker processes on this machine (the job queue's ``run_workers``)."""

    workers: int = 1
    name: str = "local"

    def run_labeling(
        self,
        url: str | None,
        *,
        campaign_id: int | None,
        workers: int,
        options: WorkerOptions,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        from interphase.labeling.workers import run_workers

        run_workers(url, workers, campaign_id=campaign_id, options=options, progress=progress)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self.workers <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        context = multiprocessing.get_context("spawn")  # torch and forked threads do not mix
        with ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=die_with,  # a killed parent leaves no fit running
            initargs=(os.getpid(),),
        ) as pool:
            return list(pool.map(_call_in_child, [(fn, item) for item in items]))


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
    progress: Progress = no_progress
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

    def worker_options(self) -> WorkerOptions:
        labeling = self.config.labeling
        if labeling.time_limit_s is None:
            return WorkerOptions(lease_s=labeling.lease_s)
        return WorkerOptions(lease_s=labeling.lease_s, time_limit_s=labeling.time_limit_s)
