"""Scheduled campaigns as Prefect deployments: the flow a tick runs, its deployment, its runs.

A tick runs :func:`scheduled_campaign_flow`, which resumes the campaign for
``iterations_per_run`` iterations. Two guards keep ticks from overlapping:
the deployment's concurrency limit of one run with ``CANCEL_NEW`` (Prefect
cancels a tick that arrives while a run is going, before it starts) and the
campaign lock (a run that finds the campaign held, e.g. by a manual
``campaign resume``, ends *Cancelled* with the holder in its message rather
than failing). A tick of a finished campaign completes with "nothing to do".

Import after :func:`interphase_flows.runtime.configure_local_prefect`.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.states import Cancelled, Completed, Failed, State

from interphase.campaign.schedules import ScheduleSpec
from interphase.campaign.ticks import FLOW_NAME, TickRun
from interphase_flows.campaign import exit_if_orphaned, run_campaign_steps, set_orphan_check

#: Work pool of deployments created on a configured Prefect server (docker-compose's).
WORK_POOL_ENV = "INTERPHASE_PREFECT_WORK_POOL"
DEFAULT_WORK_POOL = "interphase-local"
#: Set by ``interphase serve`` for its flow-run processes: the pid they must not outlive.
SERVE_PID_ENV = "INTERPHASE_SERVE_PID"
_PR_SET_PDEATHSIG = 1


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    from interphase.labeling.queue.signals import WorkerInterrupted

    raise WorkerInterrupted(signum)


def _die_with_serve() -> None:
    """Under ``interphase serve``: get SIGTERM when serve dies (even by ``kill -9``)."""
    serve_pid = os.environ.get(SERVE_PID_ENV)
    if not serve_pid or not serve_pid.isdigit():
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(serve_pid):  # serve died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _serve_died(wait_s: float = 2.0) -> bool:
    """Whether the ``interphase serve`` that started this run has died (or is dying).

    The kernel's death signal can arrive before the run is handed to its new
    parent, so this looks a little while for the parent to change or turn zombie.
    """
    serve_pid = os.environ.get(SERVE_PID_ENV)
    if not serve_pid or not serve_pid.isdigit():
        return False
    deadline = time.monotonic() + wait_s
    while True:
        if os.getppid() != int(serve_pid):
            return True
        try:
            stat = Path(f"/proc/{serve_pid}/stat").read_text()
        except OSError:
            return True
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@flow(name=FLOW_NAME, log_prints=False, validate_parameters=True)
def scheduled_campaign_flow(
    campaign: str,
    iterations: int | None = None,
    workers: int | None = None,
    url: str | None = None,
) -> State[Any]:
    """One tick: resume ``campaign`` for ``iterations`` more iterations (None: until done).

    Ends *Completed* with the campaign's outcome (or "nothing to do" when it has
    finished), *Cancelled* when another process holds the campaign or the run
    was interrupted, *Failed* when a step failed (resume fixes it).
    """
    from interphase.campaign.lock import CampaignBusyError
    from interphase.campaign.records import CampaignNotFoundError
    from interphase.campaign.run import CampaignFinishedError, StepFailedError
    from interphase.labeling.queue.signals import WorkerInterrupted

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if main else None
    _die_with_serve()
    set_orphan_check(_serve_died)
    try:
        outcome = run_campaign_steps(campaign, iterations, workers, url)
    except CampaignBusyError as busy:
        return Cancelled(message=f"skipped: {busy}")
    except CampaignFinishedError as done:
        return Completed(message=f"nothing to do: {done}")
    except (WorkerInterrupted, KeyboardInterrupt) as stop:
        exit_if_orphaned(stop)  # serve and its API died: nobody to report to
        return Cancelled(
            message=f"interrupted; the next tick or `campaign resume {campaign}` goes on"
        )
    except (StepFailedError, CampaignNotFoundError) as error:
        return Failed(message=f"{error}; fix the cause, then `campaign resume {campaign}`")
    finally:
        set_orphan_check(None)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return Completed(message=f"{outcome['state']} ({outcome['stop_reason']}): {outcome['message']}")


def prefect_schedule(spec: ScheduleSpec) -> CronSchedule | IntervalSchedule:
    """The Prefect schedule of ``spec`` (an interval ticks from ``spec.created_at``)."""
    if spec.cron is not None:
        return CronSchedule(cron=spec.cron, timezone=spec.timezone)
    assert spec.interval_seconds is not None  # ScheduleSpec holds exactly one
    anchor: Any = spec.created_at or datetime.now(UTC)  # Prefect's field coerces a datetime
    return IntervalSchedule(
        interval=timedelta(seconds=spec.interval_seconds),
        anchor_date=anchor,
        timezone=spec.timezone,
    )


def next_runs(spec: ScheduleSpec, n: int = 3, after: datetime | None = None) -> list[datetime]:
    """The next ``n`` tick times (aware, in the schedule's zone) after ``after`` (default now).

    Raises
    ------
    ValueError
        One line naming the cron expression Prefect cannot read.
    """
    from prefect.server.schemas import schedules as server
    from pydantic import ValidationError

    anchor: Any = spec.created_at or datetime.now(UTC)  # Prefect's field coerces a datetime
    try:
        if spec.cron is not None:
            schedule: Any = server.CronSchedule(cron=spec.cron, timezone=spec.timezone)
        else:
            schedule = server.IntervalSchedule(
                interval=timedelta(seconds=spec.interval_seconds or 1),
                anchor_date=anchor,
                timezone=spec.timezone,
            )
    except ValidationError:
        raise ValueError(
            f"--cron {spec.cron!r} is not a cron expression: give five fields, "
            "minute hour day-of-month month day-of-week (e.g. '0 2 * * *' or '*/10 * * * *')"
        ) from None
    start = after or datetime.now(UTC)
    return list(asyncio.run(schedule.get_dates(n=n, start=start)))


def deployment_for(spec: ScheduleSpec, workers: int | None = None) -> RunnerDeployment:
    """The deployment of ``spec``: its schedule, one run at a time, new ticks cancelled."""
    deployment: RunnerDeployment = scheduled_campaign_flow.to_deployment(
        name=spec.campaign,
        parameters={"campaign": spec.campaign, "iterations": spec.iterations_per_run}
        | ({"workers": workers} if workers else {}),
        schedules=[prefect_schedule(spec)],
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        description=f"campaign {spec.campaign!r}, {spec.describe()}",
        tags=["interphase", "campaign"],
        # A module path, not a file: any worker with interphase installed can load it.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )  # type: ignore[assignment]  # sync in a sync context
    return deployment


def api_errors() -> tuple[type[Exception], ...]:
    """What a call to an unreachable or unhappy Prefect API raises."""
    import httpx

    return (httpx.HTTPError, OSError)


class WorkPoolMissingError(LookupError):
    """The configured Prefect server has no work pool of that name."""


def work_pool_name() -> str:
    return os.environ.get(WORK_POOL_ENV) or DEFAULT_WORK_POOL


def apply_to_work_pool(spec: ScheduleSpec, pool: str) -> UUID:
    """Create or update the deployment of ``spec`` on the configured server for ``pool``."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise WorkPoolMissingError(
                f"the Prefect server at {os.environ.get('PREFECT_API_URL')} has no work pool "
                f"{pool!r}: create it (`prefect work-pool create {pool} --type process`) or "
                f"set {WORK_POOL_ENV}"
            ) from None
    deployment_id: UUID = deployment_for(spec).apply(work_pool_name=pool)  # type: ignore[assignment]
    return deployment_id


def delete_deployment(campaign: str) -> bool:
    """Remove the deployment of ``campaign`` from the configured server; whether it existed."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{campaign}")
        except ObjectNotFound:
            return False
        client.delete_deployment(deployment.id)
    return True


def recent_runs(limit: int = 50) -> list[TickRun]:
    """The latest ticks that started or ended (newest first) on the current Prefect API.

    Ticks still waiting for their time (Prefect schedules many ahead) are left out.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    flows = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
    begun = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(
                not_any_=[StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED]
            )
        )
    )
    with get_client(sync_client=True) as client:
        names = {d.id: d.name for d in client.read_deployments(flow_filter=flows)}
        runs = client.read_flow_runs(
            flow_filter=flows,
            flow_run_filter=begun,
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )
    ticks = []
    for run in runs:
        state = run.state
        ticks.append(
            TickRun(
                id=run.id,
                campaign=names.get(run.deployment_id, "?") if run.deployment_id else "?",
                state=state.type.value if state else "UNKNOWN",
                state_name=(state.name or "") if state else "",
                message=(state.message or "") if state else "",
                scheduled_at=run.expected_start_time,
            )
        )
    return ticks
