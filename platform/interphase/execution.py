"""Where labeling jobs and GP subset fits run: this machine, or a Dask cluster.

An :class:`Executor` does two things for a campaign: drain its open labeling
jobs with a number of queue workers, and apply a function to a list of items
(one GP fit per subset). :class:`LocalExecutor` uses processes of this machine.
Other kinds register in the ``interphase.executors`` entry-point group and are
loaded only when a campaign asks for them: ``dask``
(``interphase_flows.dask.DaskExecutor``, the ``hpc`` extra) sends both to a
Dask cluster through prefect-dask's ``DaskTaskRunner``: a local one, an
existing scheduler, or workers started as SLURM or PBS jobs by dask-jobqueue.
Every worker reads its jobs from the database queue, so a cluster spanning
several hosts needs a database they all reach (PostgreSQL), never a SQLite
file. Nothing here imports Prefect.

:class:`ExecutorSettings` is the ``executor:`` section of a campaign file;
its ``workers`` is the campaign's one worker count (labeling workers, parallel
GP fits).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import make_url

from interphase.labeling.queue.worker_options import WorkerOptions
from interphase.processes import die_with_parent
from interphase.threads import child_environment, plan_threads

T = TypeVar("T")
R = TypeVar("R")

#: Entry-point group of the executor kinds other than ``local``: ``kind = "module:Class"``,
#: a class taking ``(settings, url)``.
EXECUTOR_ENTRY_POINTS = "interphase.executors"


class ExecutorConfigError(ValueError):
    """The executor settings cannot work with this database or installation."""


class ExecutorSettings(BaseModel):
    """How a campaign runs its labeling jobs and GP fits (the ``executor:`` section)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "dask"] = Field(
        default="local",
        description="local: processes of this machine; dask: a Dask cluster via prefect-dask.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description=(
            "Workers of the campaign (--workers): queue workers draining the labeling jobs "
            "at once and GP subset fits in parallel (processes for local; Dask workers of "
            "one thread each for a cluster this executor starts)."
        ),
    )
    address: str | None = Field(
        default=None,
        description="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (kind dask).",
    )
    cluster: Literal["local", "slurm", "pbs"] | None = Field(
        default=None,
        description=(
            "Cluster to start when no address is given (kind dask): a LocalCluster (the "
            "default), or Dask workers as SLURM or PBS jobs (dask-jobqueue)."
        ),
    )
    queue: str | None = Field(
        default=None, description="Batch queue or partition of the worker jobs (slurm/pbs)."
    )
    account: str | None = Field(
        default=None, description="Account charged for the worker jobs (slurm/pbs)."
    )
    cores: int = Field(default=1, ge=1, description="CPU cores per worker job (slurm/pbs).")
    memory: str = Field(
        default="4GiB", description="Memory per worker job, e.g. 16GiB (slurm/pbs)."
    )
    walltime: str = Field(
        default="01:00:00", description="Wall-time limit per worker job, HH:MM:SS (slurm/pbs)."
    )
    processes: int = Field(
        default=1,
        ge=1,
        description="Dask worker processes per worker job; the cores are shared among them.",
    )
    job_extra_directives: list[str] = Field(
        default_factory=list,
        description="Extra batch directives per worker job, e.g. ['--gres=gpu:1'] (slurm/pbs).",
    )
    job_script_prologue: list[str] = Field(
        default_factory=list,
        description="Shell lines run before the Dask worker starts, e.g. 'module load psi4'.",
    )
    adapt_minimum: int | None = Field(
        default=None,
        ge=0,
        description="Fewest Dask workers when adapting to the load (slurm/pbs).",
    )
    adapt_maximum: int | None = Field(
        default=None,
        ge=1,
        description="Most Dask workers when adapting to the load (slurm/pbs); unset: fixed size.",
    )
    gpu_resources: bool = Field(
        default=False,
        description=(
            "Run GP fits and training only on Dask workers with the resource GPU=1 (workers "
            "this executor starts declare it; start others with --resources GPU=1)."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExecutorSettings:
        dask_only = {
            "address": self.address is not None,
            "cluster": self.cluster is not None,
            "gpu_resources": self.gpu_resources,
        }
        if self.kind == "local" and any(dask_only.values()):
            named = ", ".join(name for name, given in dask_only.items() if given)
            raise ValueError(f"{named} need kind: dask (kind is local)")
        if self.address is not None and self.cluster is not None:
            raise ValueError("give either address (an existing scheduler) or cluster, not both")
        if (self.adapt_minimum is None) != (self.adapt_maximum is None):
            raise ValueError("give adapt_minimum and adapt_maximum together")
        if self.adapt_maximum is not None and (self.adapt_minimum or 0) > self.adapt_maximum:
            raise ValueError("adapt_minimum exceeds adapt_maximum")
        return self

    @property
    def multi_host(self) -> bool:
        """Whether workers may run on other machines (a scheduler address, SLURM or PBS)."""
        return self.kind == "dask" and (
            self.address is not None or self.cluster in ("slurm", "pbs")
        )


class Executor(Protocol):
    """Runs a campaign's labeling jobs and GP subset fits."""

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
        """Drain the campaign's open jobs with ``workers`` workers; return when none is open.

        Raises
        ------
        WorkerInterrupted
            On SIGINT/SIGTERM, after every worker released its job.
        """
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply a picklable top-level ``fn`` to ``items`` (GP subset fits); results in order."""
        ...

    def close(self) -> None:
        """Release what the executor started (a cluster); it cannot be used after."""
        ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *_exc: object) -> None: ...


@dataclass
class LocalExecutor:
    """Labeling with worker processes of this machine; ``map`` in a process pool.

    Parameters
    ----------
    workers
        Processes for :meth:`map` (1: in this process).
    """

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
        """See :meth:`Executor.run_labeling` (``labeling.queue.parallel.run_workers``)."""
        from interphase.labeling.queue.parallel import run_workers

        run_workers(url, workers, campaign_id=campaign_id, options=options, progress=progress)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, in ``workers`` spawned processes when more than 1.

        The processes die with this one (``PR_SET_PDEATHSIG``), so a killed
        campaign leaves no fit running, and share the cores (``OMP_NUM_THREADS``
        unless set).
        """
        if self.workers <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        return list(map_in_processes(fn, items, self.workers))

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def map_in_processes(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` in up to ``workers`` spawned processes; results in input order.

    Results come as they are ready (in order), so a caller can report progress.
    The processes die with this one (``PR_SET_PDEATHSIG``), so a killed
    campaign leaves no fit running, and share the cores (``OMP_NUM_THREADS``
    unless set). Spawned, not forked: torch and forked threads do not mix.
    """
    workers = max(min(workers, len(items)), 1)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_map_process,
        initargs=(os.getpid(), plan_threads(workers - 1).threads),
    ) as pool:
        yield from pool.map(fn, items)


def _start_map_process(parent_pid: int, threads: int) -> None:
    """Initializer of a map process: die with the parent; share the cores among the processes."""
    die_with_parent(parent_pid)
    # Read by torch, numpy's BLAS and the engines when they load, after this.
    for name, value in child_environment(threads).items():
        os.environ.setdefault(name, value)


def is_sqlite(url: str) -> bool:
    """Whether ``url`` is a SQLite database (a file only this machine reaches)."""
    return make_url(url).get_backend_name() == "sqlite"


def check_reachable(settings: ExecutorSettings, url: str) -> None:
    """Refuse a multi-host executor on a SQLite database (:class:`ExecutorConfigError`)."""
    if settings.multi_host and is_sqlite(url):
        where = (
            f"the scheduler at {settings.address}"
            if settings.address
            else f"{settings.cluster} jobs"
        )
        raise ExecutorConfigError(
            f"executor: workers started by {where} may run on other hosts, which cannot reach "
            "the SQLite database; set INTERPHASE_DATABASE_URL to a PostgreSQL URL, or use "
            "`cluster: local` / `kind: local`"
        )


def executor_from_settings(settings: ExecutorSettings, url: str | None) -> Executor:
    """The executor the settings describe, for the database at ``url`` (None: configured one).

    Raises
    ------
    ExecutorConfigError
        A multi-host executor on SQLite, or ``kind: dask`` without the ``hpc`` extra.
    """
    if url is None:
        from interphase.settings import get_settings

        url = get_settings().resolved_database_url
    check_reachable(settings, url)
    if settings.kind == "local":
        return LocalExecutor(workers=settings.workers)
    return _registered_executor(settings.kind)(settings, url)


def _registered_executor(kind: str) -> Callable[[ExecutorSettings, str], Executor]:
    """The executor class registered for ``kind`` (:data:`EXECUTOR_ENTRY_POINTS`)."""
    found = entry_points(group=EXECUTOR_ENTRY_POINTS, name=kind)
    if not found:
        raise ExecutorConfigError(
            f"executor kind {kind} is not installed (no {EXECUTOR_ENTRY_POINTS} entry point "
            f"{kind!r}): pip install 'interphase[hpc]'"
        )
    try:
        executor_class: Callable[[ExecutorSettings, str], Executor] = next(iter(found)).load()
    except ImportError as error:
        raise ExecutorConfigError(
            f"executor kind {kind} needs the hpc extra ({error.name} is missing): "
            "pip install 'interphase[hpc]'"
        ) from None
    return executor_class
