"""Draining the queue with several worker processes (``interphase jobs run --workers N``).

Each worker is a process of its own running
:func:`~interphase.labeling.queue.run.run_pending_jobs`. SIGINT and SIGTERM reach
every worker (the parent forwards them), each stops its calculation and puts
its job back to pending; the parent then exits with the signal's status. A
worker that fails prints one line and the parent reports it, never a traceback.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from sqlalchemy import func, select

from interphase.db import membership
from interphase.db.models import JobState, LabelingJob, LevelOfTheory
from interphase.db.session import transaction
from interphase.labeling.isolation.forkserver import calculation_servers
from interphase.labeling.queue.run import DrainReport, run_pending_jobs
from interphase.labeling.queue.signals import STOP_SIGNALS, WorkerInterrupted
from interphase.labeling.queue.worker_options import WorkerOptions
from interphase.processes import die_with_parent
from interphase.threads import child_environment, plan_threads

#: Exit status of a worker process that failed on an error (it printed one line).
WORKER_FAILED = 1


class WorkersFailedError(RuntimeError):
    """One or more worker processes exited with an error."""


def count_open(
    url: str | None,
    *,
    engine: str | None = None,
    level_id: int | None = None,
    campaign_id: int | None = None,
) -> int:
    """Pending plus running jobs (optionally of one engine, level or campaign).

    A campaign's are its own and the open jobs of others that it waits for.
    """
    with transaction(url) as session:
        query = (
            select(func.count())
            .select_from(LabelingJob)
            .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
            .where(LabelingJob.state.in_([JobState.pending, JobState.running]))
        )
        if engine is not None:
            query = query.where(LevelOfTheory.engine == engine)
        if level_id is not None:
            query = query.where(LabelingJob.level_id == level_id)
        if campaign_id is not None:
            query = query.where(membership.campaign_job(campaign_id))
        return int(session.scalar(query) or 0)


def worker_main(
    url: str | None,
    engine: str | None,
    level_id: int | None,
    options: WorkerOptions,
    campaign_id: int | None = None,
    parent_pid: int | None = None,
) -> None:
    """Body of one worker process: drain the queue; exit 130/143 on a stop signal.

    With ``parent_pid`` the worker dies with that parent (a ``kill -9`` of the
    process that started it leaves no worker behind; its job returns through
    the lease).
    """
    if parent_pid is not None:
        die_with_parent(parent_pid, WORKER_FAILED)
    try:
        run_pending_jobs(
            url, engine=engine, level_id=level_id, campaign_id=campaign_id, options=options
        )
    except WorkerInterrupted as stop:
        sys.exit(stop.exit_status)
    except Exception as error:  # one line per failed worker; the parent reports the count
        print(f"worker {os.getpid()} failed: {_one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(WORKER_FAILED)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def run_workers(
    url: str | None,
    n_workers: int,
    *,
    engine: str | None = None,
    level_id: int | None = None,
    campaign_id: int | None = None,
    options: WorkerOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    poll_s: float = 0.5,
) -> DrainReport | None:
    """Drain the queue with ``n_workers`` worker processes (or this process when 1).

    ``progress(done, total)`` is called as jobs finish. Returns the drain report
    for a single in-process worker; with several workers the outcome is in the
    database (``interphase status`` / ``jobs list``).

    Every worker process, and every process they started, has exited when
    this returns or raises.

    Raises
    ------
    WorkerInterrupted
        After SIGINT/SIGTERM, once every worker has released its job.
    WorkersFailedError
        When a worker process exited with an error or was killed.
    """
    options = options or WorkerOptions()

    def still_open() -> int:
        return count_open(url, engine=engine, level_id=level_id, campaign_id=campaign_id)

    total = still_open()
    if n_workers <= 1:

        def report_progress(report: DrainReport) -> None:
            if progress is not None:
                progress(report.done, total)

        return run_pending_jobs(
            url,
            engine=engine,
            level_id=level_id,
            campaign_id=campaign_id,
            options=options,
            progress=report_progress,
        )
    # Share the cores among the workers (the thread policy, interphase.threads) unless
    # the caller chose a thread count; oversubscribed OpenMP threads spin against each other.
    for name, value in child_environment(plan_threads(n_workers - 1).threads).items():
        os.environ.setdefault(name, value)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=worker_main,
            args=(url, engine, level_id, options, campaign_id, os.getpid()),
        )
        for _ in range(n_workers)
    ]
    # calculation_servers: starting a worker starts the resource tracker, stopped at the end.
    with calculation_servers(), _noting_stop_signals() as received:
        with _ignoring_stop_signals():  # children start ignoring them until their handlers are in
            for worker in workers:
                worker.start()
        while any(worker.is_alive() for worker in workers):
            time.sleep(poll_s)
            if received:  # every round: a worker may have been starting up, ignoring it
                _forward(workers, received[0])
            if progress is not None:
                progress(max(total - still_open(), 0), total)
        for worker in workers:
            worker.join()
    if received:
        raise WorkerInterrupted(received[0])
    _check_exits(workers)
    return None


def _check_exits(workers: list[Any]) -> None:
    failed = [worker.exitcode for worker in workers if worker.exitcode != 0]
    if failed:
        statuses = ", ".join(
            f"killed by {signal.Signals(-code).name}" if code < 0 else f"status {code}"
            for code in failed
        )
        raise WorkersFailedError(
            f"{len(failed)} of {len(workers)} workers failed ({statuses}); their jobs go back "
            "to pending when the lease expires"
        )


@contextmanager
def _ignoring_stop_signals() -> Iterator[None]:
    """SIGINT/SIGTERM ignored here meanwhile; processes started now inherit that."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _noting_stop_signals() -> Iterator[list[int]]:
    """Note SIGINT/SIGTERM (the wait loop forwards them); yields the signals received."""
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        if not received:
            received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _forward(workers: list[Any], signum: int) -> None:
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(worker.pid, signum)
