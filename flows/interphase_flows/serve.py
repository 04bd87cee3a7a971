"""``interphase serve``: run scheduled campaigns with a Prefect runner until stopped.

:func:`serve_schedules` serves one deployment per schedule from this process
(Prefect's :func:`prefect.serve`), so no worker or work pool is needed. A
watcher thread polls the API and reports each tick's outcome. Ctrl-C or SIGTERM
stops it: the runs in flight get SIGTERM (a campaign stops after releasing its
jobs, resumable), then the runner exits; a run process also gets SIGTERM if
serve itself dies (``interphase_flows.schedule`` sets that up).

While serving, ``<data_dir>/prefect/serve.json`` names the API URL and pid, so
``campaign schedules`` can read recent ticks from the embedded server.

Import after :func:`interphase_flows.runtime.configure_local_prefect`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from interphase.campaign.schedules import ScheduleSpec
from interphase.campaign.ticks import serve_info_path
from interphase_flows.schedule import (
    FLOW_NAME,
    SERVE_PID_ENV,
    TickRun,
    api_errors,
    deployment_for,
    recent_runs,
)

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

#: Seconds between the watcher's looks at the API.
WATCH_POLL_S = 2.0


@contextmanager
def _serve_info(data_dir: Path, api_url: str) -> Iterator[None]:
    path = serve_info_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


class TickWatcher:
    """Report each tick once it starts and once it ends (a thread polling the API)."""

    def __init__(self, report: Callable[[TickRun], None], poll_s: float = WATCH_POLL_S) -> None:
        self._report, self._poll_s = report, poll_s
        self._seen: dict[object, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tick-watcher", daemon=True)

    def start(self) -> None:
        try:  # ticks of an earlier serve are history: report only what changes from now on
            self._seen = {tick.id: tick.state for tick in recent_runs() if tick.final}
        except api_errors():  # the server may still be warming up; watch anyway
            pass
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.poll()  # the outcomes of runs that ended while stopping
        except api_errors():
            pass

    def poll(self) -> None:
        for tick in reversed(recent_runs()):
            before = self._seen.get(tick.id)
            if tick.state == before or tick.state in ("SCHEDULED", "PENDING"):
                continue
            if tick.state in ("RUNNING", *("COMPLETED", "CANCELLED", "FAILED", "CRASHED")):
                self._seen[tick.id] = tick.state
                self._report(tick)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.poll()
            except api_errors():  # a transient API error: the next poll retries
                continue


async def _serve(deployments: list[RunnerDeployment]) -> None:
    """Run a Prefect runner until SIGINT or SIGTERM, then stop it and its runs cleanly."""
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=True)
    for deployment in deployments:
        await runner.aadd_deployment(deployment)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    serving = asyncio.ensure_future(runner.start())
    # The runner's start installs a SIGTERM handler that exits at once; ours
    # replaces it once start has begun (its first step, before any await).
    await asyncio.sleep(0)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            # Prefect cancels the runs in flight: SIGTERM, on which a campaign
            # releases its jobs and ends its run cancelled (resumable).
            await runner.astop()
        await serving
    finally:
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def serve_schedules(
    specs: list[ScheduleSpec],
    *,
    data_dir: Path,
    api_url: str,
    report: Callable[[TickRun], None],
    workers: int | None = None,
) -> None:
    """Serve ``specs`` on the current Prefect API until SIGINT or SIGTERM.

    Deployments of the scheduled-campaign flow that no longer have a schedule
    are deleted first, so the server stops creating ticks nobody runs.
    """
    _delete_unscheduled({spec.campaign for spec in specs})
    deployments = [deployment_for(spec, workers=workers) for spec in specs]
    os.environ[SERVE_PID_ENV] = str(os.getpid())
    watcher = TickWatcher(report)
    try:
        with _serve_info(data_dir, api_url):
            watcher.start()
            try:
                asyncio.run(_serve(deployments))
            finally:
                watcher.stop()
    finally:
        os.environ.pop(SERVE_PID_ENV, None)


def _delete_unscheduled(keep: set[str]) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
        ):
            if deployment.name not in keep:
                client.delete_deployment(deployment.id)
