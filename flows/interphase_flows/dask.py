"""Labeling jobs and GP subset fits on a Dask cluster, through prefect-dask's DaskTaskRunner.

Each labeling call is a small Prefect flow whose task runner is a
``DaskTaskRunner`` on the executor's cluster; it ``.map()``s one
:func:`drain_campaign` task per queue worker (only ``.submit``/``.map`` reach a
task runner). A drain task is an ordinary queue worker
(:func:`~interphase.labeling.queue.run.run_pending_jobs`) in a Dask worker thread:
the database queue leases every job, so a job runs exactly once however many
drains claim, and a job whose Dask worker was killed returns through its lease
(a drain requeues it before its next claim). A drain keeps going until the
campaign has no open job, so the flow ends when the labeling is done.

Each flow runs in a fresh :mod:`contextvars` context, as a flow run of its
own: called from a campaign step (itself a Prefect task), it would otherwise
inherit that task's run context, which Dask would have to serialise.

Signals cannot reach a Dask worker thread. A stop signal in the executor's
process sets a key in the scheduler's metadata; each drain's
:class:`RemoteStopGuard` looks at it between jobs and while an isolated job
runs, stops the calculation and puts its job back to pending, as a signalled
worker process would.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import dask
import distributed
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import unmapped
from prefect_dask import DaskTaskRunner

from interphase.execution import ExecutorSettings, check_reachable
from interphase.labeling.queue.db_retry import with_retries
from interphase.labeling.queue.parallel import WorkersFailedError, count_open
from interphase.labeling.queue.run import DrainReport, run_pending_jobs
from interphase.labeling.queue.signals import StopGuard, WorkerInterrupted, stop_signals
from interphase.labeling.queue.worker_options import WorkerOptions
from interphase_flows.clusters import GPU_RESOURCE, prefect_api_url, start_cluster

T = TypeVar("T")
R = TypeVar("R")

#: Scheduler metadata key (with the labeling run's id) that tells drains to stop.
STOP_KEY = "interphase-stop"


class RemoteStopGuard(StopGuard):
    """A :class:`StopGuard` that also fires when the run's stop key is set on the scheduler.

    It looks at the key on every check (one scheduler round trip, well under the
    cost of a job's database writes): before each claim, before an in-process
    calculation and every half second while an isolated one runs. So no drain
    claims a job after the stop, not even one another drain just put back.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def check(self) -> None:
        if self.received is None:
            try:
                signum = distributed.get_client().get_metadata([STOP_KEY, self.run_id], None)
            except OSError:  # scheduler briefly unreachable: look again next time
                signum = None
            if signum is not None:
                self.received = int(signum)
        super().check()


@dataclass
class DrainResult:
    """What one drain task did: its outcome counts, and the signal that stopped it."""

    report: DrainReport = field(default_factory=DrainReport)
    signum: int | None = None


def drain_campaign(
    url: str, campaign_id: int | None, options: WorkerOptions, run_id: str, poll_s: float = 1.0
) -> DrainResult:
    """Run the campaign's jobs until none is open (pending or running); a Dask task body.

    While other workers' jobs are still running it waits and claims again, so
    the job of a worker that died comes back here once its lease expires.
    """
    guard = RemoteStopGuard(run_id)
    result = DrainResult()

    def still_open() -> int:
        return count_open(url, campaign_id=campaign_id)

    try:
        while True:
            report = run_pending_jobs(
                url, campaign_id=campaign_id, options=options, handle_signals=False, guard=guard
            )
            result.report.merge(report)
            left = with_retries(
                still_open, what="count open jobs", give_up_after_s=options.database_retry_s
            )
            if left == 0:
                return result
            deadline = time.monotonic() + poll_s
            while time.monotonic() < deadline:
                guard.check()
                time.sleep(min(0.2, poll_s))
    except WorkerInterrupted as stop:
        result.signum = stop.signum
        return result


def apply_one(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)``: the body of one :meth:`DaskExecutor.map` task."""
    return fn(item)


drain_task = task(name="drain-labeling-queue", cache_policy=NO_CACHE)(drain_campaign)
apply_task = task(name="apply", cache_policy=NO_CACHE)(apply_one)


@dataclass
class _RunControl:
    """What a labeling flow needs from this process and must not ship to workers."""

    client: distributed.Client
    guard: StopGuard
    total: int
    progress: Callable[[int, int], None] | None


#: Labeling runs of this process by run id. Flow parameters travel to every
#: task (Prefect serialises the flow run's context), so the stop guard, the
#: scheduler client and the progress callback stay here and are found by id.
_RUNS: dict[str, _RunControl] = {}


def _labeling(
    url: str, campaign_id: int | None, workers: int, options: WorkerOptions, run_id: str
) -> list[DrainResult]:
    control = _RUNS[run_id]
    # Here, not around the flow call: Prefect's flow engine installs a SIGTERM
    # handler of its own for the flow run, which would cut the run short.
    with stop_signals(guard=control.guard):
        futures = drain_task.map(
            url=unmapped(url),
            campaign_id=unmapped(campaign_id),
            options=unmapped(options),
            run_id=unmapped(run_id),
            poll_s=[1.0] * workers,
        )
        stop_sent = False
        while True:
            done = wait(futures, timeout=1.0)
            if control.guard.received is not None and not stop_sent:
                control.client.set_metadata([STOP_KEY, run_id], control.guard.received)
                stop_sent = True
            if control.progress is not None:
                left = count_open(url, campaign_id=campaign_id)
                control.progress(max(control.total - left, 0), control.total)
            if not done.not_done:
                break
    for future in futures:
        future.wait()  # takes the final state from Dask (the API's may lag behind)
    failed = [future for future in futures if not future.state.is_completed()]
    # A drain that died with its Dask worker (killed, out of memory) is no
    # failure while the others finished its jobs: its job came back to them.
    stopped = control.guard.received is not None
    if failed and not stopped and count_open(url, campaign_id=campaign_id) > 0:
        message = f"{failed[0].state.name}: {failed[0].state.message}"
        raise WorkersFailedError(
            f"{len(failed)} of {len(futures)} Dask labeling tasks failed ({message}); "
            "their jobs go back to pending when the lease expires"
        )
    return [future.result() for future in futures if future.state.is_completed()]


def _map(fn: Callable[[T], R], items: list[T], gpu: bool) -> list[R]:
    annotation = dask.annotate(resources={GPU_RESOURCE: 1}) if gpu else contextlib.nullcontext()
    with annotation:
        futures = apply_task.map(fn=unmapped(fn), item=items)
    return [future.result() for future in futures]


labeling_flow = flow(name="interphase-labeling", validate_parameters=False)(_labeling)
map_flow = flow(name="interphase-map", validate_parameters=False)(_map)


class DaskExecutor:
    """Labeling and ``map`` on a Dask cluster (see the module docstring).

    The cluster (a LocalCluster, or SLURM/PBS jobs) starts on first use and
    lives until :meth:`close`; with ``address`` the executor only connects.

    Parameters
    ----------
    settings
        ``kind: dask`` executor settings.
    url
        The database every worker reads its jobs from.
    """

    name = "dask"

    def __init__(self, settings: ExecutorSettings, url: str) -> None:
        check_reachable(settings, url)
        self.settings = settings
        self.url = url
        self._cluster: Any = None
        self._client: distributed.Client | None = None

    @property
    def address(self) -> str:
        """The scheduler's address (starting this executor's cluster if needed)."""
        if self.settings.address is not None:
            return self.settings.address
        if self._cluster is None:
            self._cluster = start_cluster(self.settings, prefect_api_url())
        return str(self._cluster.scheduler_address)

    @property
    def client(self) -> distributed.Client:
        """A client of the scheduler for this process (stop keys, worker lists)."""
        if self._client is None:
            self._client = distributed.Client(self.address, set_as_default=False)
        return self._client

    def task_runner(self) -> TaskRunner[Any]:
        """A prefect-dask task runner on this executor's scheduler."""
        return cast("TaskRunner[Any]", DaskTaskRunner(address=self.address))

    def run_labeling(
        self,
        url: str | None,
        *,
        campaign_id: int | None,
        workers: int,
        options: WorkerOptions,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Drain the campaign's open jobs with ``workers`` drain tasks on Dask.

        Raises
        ------
        WorkerInterrupted
            On SIGINT/SIGTERM here, once every drain put its job back to pending.
        WorkersFailedError
            When a drain task failed (its Dask worker died too often, the
            database stayed unreachable).
        """
        contextvars.Context().run(
            self._run_labeling, url or self.url, campaign_id, workers, options, progress
        )

    def _run_labeling(
        self,
        url: str,
        campaign_id: int | None,
        workers: int,
        options: WorkerOptions,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        run_id = uuid.uuid4().hex
        total = count_open(url, campaign_id=campaign_id)
        runner = labeling_flow.with_options(task_runner=self.task_runner())
        guard = StopGuard()
        _RUNS[run_id] = _RunControl(self.client, guard, total, progress)
        try:
            results = runner(url, campaign_id, workers, options, run_id)
        finally:
            del _RUNS[run_id]
        signum = guard.received or next((r.signum for r in results if r.signum), None)
        if signum is not None:
            raise WorkerInterrupted(signum)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]`` as Dask tasks (on GPU=1 workers with gpu_resources)."""
        if not items:
            return []
        return contextvars.Context().run(self._run_map, fn, list(items))

    def _run_map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        runner = map_flow.with_options(task_runner=self.task_runner())
        return runner(fn, items, self.settings.gpu_resources)

    def close(self) -> None:
        """Close the client and the cluster this executor started."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
