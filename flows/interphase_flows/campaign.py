"""The campaign as a Prefect flow: each step of each iteration is a Prefect task.

The loop itself is :func:`interphase.campaign.run.run_campaign`; this flow only
runs each step as a task, so Prefect's UI and API show every step, its state
and its time. Import after :func:`interphase_flows.runtime.configure_local_prefect`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from interphase.campaign.records import StepName
from interphase.campaign.run import (
    Reporter,
    RunOutcome,
    abandon_active_runs,
    execute_step,
    run_campaign,
)
from interphase.labeling.queue.signals import WorkerInterrupted

_reporter: Reporter | None = None
_orphaned: Callable[[], bool] | None = None


def set_reporter(reporter: Reporter | None) -> None:
    """Where step starts, ends and progress go (the CLI's console); process-wide."""
    global _reporter
    _reporter = reporter


def set_orphan_check(check: Callable[[], bool] | None) -> None:
    """How a step tells, once interrupted, that the Prefect API is gone for good.

    Then nothing can record the interruption in Prefect (each call would retry
    for about a minute), so the step records it in the campaign's database,
    releases the campaign and exits the process at once.
    """
    global _orphaned
    _orphaned = check


@task(name="campaign-step", cache_policy=NO_CACHE, task_run_name="{step}[{iteration}]")
def run_step(
    url: str | None, campaign_id: int, iteration: int, step: str, workers: int | None
) -> dict[str, Any]:
    """One step of one iteration (recorded in the database with its outputs)."""
    try:
        return execute_step(
            url, campaign_id, iteration, StepName(step), workers=workers, reporter=_reporter
        )
    except (WorkerInterrupted, KeyboardInterrupt) as stop:
        exit_if_orphaned(stop)
        raise


def exit_if_orphaned(stop: WorkerInterrupted | KeyboardInterrupt) -> None:
    """After an interruption: if the Prefect API is gone, save the campaign and exit now."""
    if _orphaned is None or not _orphaned():
        return
    abandon_active_runs(f"interrupted ({type(stop).__name__}; its Prefect API died)")
    os._exit(stop.exit_status if isinstance(stop, WorkerInterrupted) else 128 + signal.SIGINT)


def run_campaign_steps(
    campaign: str, iterations: int | None, workers: int | None, url: str | None
) -> dict[str, Any]:
    """The loop with each step as a task; call inside a flow (this one or a scheduled one)."""
    from interphase.campaign.records import find_campaign
    from interphase.db.session import transaction

    with transaction(url, read_only=True) as session:
        campaign_id = find_campaign(session, campaign).id

    def step_runner(index: int, step: StepName) -> dict[str, Any]:
        return run_step(url, campaign_id, index, step.value, workers)

    outcome: RunOutcome = run_campaign(
        url, campaign, workers=workers, iterations=iterations, step_runner=step_runner
    )
    return {
        "campaign": outcome.campaign,
        "state": outcome.state,
        "stop_reason": outcome.stop_reason,
        "message": outcome.message,
        "steps_run": outcome.steps_run,
    }


@flow(name="interphase-campaign", log_prints=False, validate_parameters=True)
def campaign_flow(
    campaign: str,
    iterations: int | None = None,
    workers: int | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """Run or resume campaign ``campaign`` until a stopping rule fires (or ``iterations`` more)."""
    return run_campaign_steps(campaign, iterations, workers, url)
