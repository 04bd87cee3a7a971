"""The campaign loop: run the first unfinished step until a stopping rule fires.

:func:`run_campaign` is the whole loop, with no Prefect in it; the Prefect
flow (``interphase_flows.campaign``) passes a ``step_runner`` that runs each
step as a Prefect task. A campaign is resumable at any point: finished steps
are recorded with their outputs, so the loop always continues with the first
step that has not succeeded.
"""

from __future__ import annotations

import contextvars
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from interphase.campaign.config import CampaignConfig
from interphase.campaign.context import StepContext
from interphase.campaign.faults import hold_here
from interphase.campaign.lock import CampaignLock
from interphase.campaign.progress import ProgressRecorder
from interphase.campaign.records import (
    STEP_ORDER,
    StepName,
    begin_step,
    campaign_config,
    create_campaign,
    fail_step,
    find_campaign,
    get_iteration,
    steps_of,
)
from interphase.campaign.steps import (
    augment,
    evaluate,
    explore,
    fit,
    generate,
    label,
    summary,
    train,
)
from interphase.campaign.steps import (
    select as select_step,
)
from interphase.campaign.stopping import StopDecision, check_stopping
from interphase.db.models import Campaign, CampaignState, Iteration, StepState, utcnow
from interphase.db.session import database_url, transaction
from interphase.execution import (
    Executor,
    LocalExecutor,
    check_reachable,
    executor_from_settings,
)
from interphase.settings import get_settings

RUNNERS: dict[StepName, Callable[[StepContext], dict[str, Any]]] = {
    StepName.generate: generate.run,
    StepName.label: label.run,
    StepName.fit: fit.run,
    StepName.select: select_step.run,
    StepName.refit: fit.run,
    StepName.augment: augment.run,
    StepName.train: train.run,
    StepName.explore: explore.run,
    StepName.evaluate: evaluate.run,
    StepName.summary: summary.run,
}


class CampaignFinishedError(RuntimeError):
    """The campaign has finished: a stopping rule fired."""


class StepFailedError(RuntimeError):
    """A step raised; the campaign stopped there and can be resumed."""


class Reporter(Protocol):
    def step_started(self, iteration: int, step: StepName) -> None: ...

    def step_finished(
        self, iteration: int, step: StepName, outputs: dict[str, Any], seconds: float
    ) -> None: ...

    def progress(self, description: str, done: int, total: int | None) -> None: ...


class SilentReporter:
    def step_started(self, iteration: int, step: StepName) -> None:
        return None

    def step_finished(
        self, iteration: int, step: StepName, outputs: dict[str, Any], seconds: float
    ) -> None:
        return None

    def progress(self, description: str, done: int, total: int | None) -> None:
        return None


@dataclass
class RunOutcome:
    """How one run (or resume) of a campaign ended."""

    campaign: str
    state: str
    stop_reason: str | None
    message: str
    steps_run: list[tuple[int, str]] = field(default_factory=list)


def register_campaign(url: str | None, config: CampaignConfig) -> int:
    """Record a new campaign (refused when the name exists); returns its id."""
    with transaction(url) as session:
        return create_campaign(session, config).id


def next_step(url: str | None, campaign_id: int) -> tuple[int, StepName]:
    """The first step not yet succeeded: (iteration index, step)."""
    with transaction(url, read_only=True) as session:
        done = {
            (row.iteration_index, row.name)
            for row in steps_of(session, campaign_id)
            if row.state == StepState.succeeded.value
        }
    index = 0
    while True:
        for step in STEP_ORDER:
            if (index, step.value) not in done:
                return index, step
        index += 1


def execute_step(
    url: str | None,
    campaign_id: int,
    index: int,
    step: StepName,
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    artifacts_dir: Path | None = None,
) -> dict[str, Any]:
    """Run one step of one iteration and record it; returns its outputs."""
    reporter = reporter or SilentReporter()
    if executor is None and step in DISTRIBUTED_STEPS:
        with transaction(url, read_only=True) as session:
            config = campaign_config(session.get_one(Campaign, campaign_id))
        if config.executor.kind == "dask" and not _outside_prefect.get():
            # The executor's own Prefect flow (DaskTaskRunner) must not inherit this
            # step's Prefect run context: Dask would have to serialize it.
            fresh = contextvars.Context()
            fresh.run(_outside_prefect.set, True)
            return fresh.run(
                execute_step, url, campaign_id, index, step,
                workers=workers, reporter=reporter, artifacts_dir=artifacts_dir,
            )  # fmt: skip
        with executor_from_settings(config.executor, url) as chosen:
            return execute_step(
                url, campaign_id, index, step, workers=workers, executor=chosen,
                reporter=reporter, artifacts_dir=artifacts_dir,
            )  # fmt: skip

    with transaction(url) as session:
        campaign = session.get_one(Campaign, campaign_id)
        config = campaign_config(campaign)
        iteration_id = get_iteration(session, campaign_id, index).id
        begin_step(session, campaign_id, index, step)
        name = campaign.name
    n_workers = workers or config.labeling.workers

    record = ProgressRecorder(url, campaign_id, index, step)

    def progress(description: str, done: int, total: int | None) -> None:
        record(description, done, total)
        hold_here(index, step, done)
        reporter.progress(description, done, total)

    ctx = StepContext(
        url=url,
        campaign_id=campaign_id,
        campaign_name=name,
        config=config,
        iteration=index,
        iteration_id=iteration_id,
        step=step,
        artifacts_dir=artifacts_dir or get_settings().artifacts_dir,
        executor=executor or LocalExecutor(workers=config.gp.workers),
        workers=n_workers,
        progress=progress,
        display_progress=reporter.progress,
    )
    reporter.step_started(index, step)
    try:
        outputs = RUNNERS[step](ctx)
    except Exception as error:
        detail = "".join(traceback.format_exception(error)[-12:])
        with transaction(url) as session:
            fail_step(session, campaign_id, index, step, detail)
        raise StepFailedError(f"iteration {index} step {step.value} failed: {error}") from error
    reporter.step_finished(index, step, outputs, ctx.seconds)
    return outputs


StepRunner = Callable[[int, StepName], dict[str, Any]]

_outside_prefect: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "interphase_outside_prefect", default=False
)

#: Steps whose work goes to the configured executor (labeling jobs, GP fits).
DISTRIBUTED_STEPS = frozenset({StepName.label, StepName.select, StepName.fit, StepName.refit})


def request_stop(url: str | None, name: str) -> str:
    """Ask the runner of a campaign to stop after its current step; returns its state."""
    with transaction(url) as session:
        campaign = find_campaign(session, name)
        if campaign.state != CampaignState.running.value:
            return campaign.state
        campaign.stop_requested = True
        return campaign.state


def _finish(
    url: str | None, campaign_id: int, state: CampaignState, decision: StopDecision, seconds: float
) -> None:
    with transaction(url) as session:
        campaign = session.get_one(Campaign, campaign_id)
        campaign.state = state.value
        campaign.stop_reason = decision.reason
        campaign.stop_detail = {**decision.detail, "message": decision.message}
        campaign.stop_requested = False
        campaign.run_seconds += seconds
        campaign.updated_at = utcnow()


#: Runs this process holds now: each one's lock and ``time.perf_counter()`` at its
#: start, by campaign id (see :func:`abandon_active_runs`).
_active_runs: dict[int, tuple[CampaignLock, float]] = {}


def abandon_active_runs(message: str) -> None:
    """Record every run this process holds as stopped (interrupted) and release its lock.

    For a process about to exit without unwinding (``os._exit``), when the code
    around the loop cannot run any more: a scheduled run whose ``interphase
    serve`` died, whose Prefect API went with it. The campaign stays resumable
    at the step that was running, as after any interruption.
    """
    for campaign_id, (lock, started) in list(_active_runs.items()):
        decision = StopDecision("interrupted", {}, message)
        _finish(
            lock.url, campaign_id, CampaignState.stopped, decision, time.perf_counter() - started
        )
        lock.release()
        del _active_runs[campaign_id]


def _finished_iterations(url: str | None, campaign_id: int) -> int:
    with transaction(url, read_only=True) as session:
        return len(
            session.scalars(
                select(Iteration.id).where(
                    Iteration.campaign_id == campaign_id, Iteration.status == "succeeded"
                )
            ).all()
        )


def run_campaign(
    url: str | None,
    name: str,
    *,
    workers: int | None = None,
    iterations: int | None = None,
    executor: Executor | None = None,
    reporter: Reporter | None = None,
    step_runner: StepRunner | None = None,
) -> RunOutcome:
    """Run (or resume) campaign ``name`` until a stopping rule fires or it is stopped.

    ``iterations`` ends this run after that many more iterations (the campaign
    stays resumable: state ``stopped``, reason ``run_limit``). Ctrl-C or SIGTERM
    stops after releasing running jobs (state ``stopped``, reason ``interrupted``).
    """
    with transaction(url) as session:
        campaign = find_campaign(session, name)
        campaign_id, run_before = campaign.id, campaign.run_seconds
        check_reachable(campaign_config(campaign).executor, url or database_url())
        if campaign.state == CampaignState.finished.value:
            raise CampaignFinishedError(
                f"campaign {name!r} finished ({campaign.stop_reason}: "
                f"{campaign.stop_detail.get('message', '')}); nothing to resume"
            )
    config_check = None
    with CampaignLock(url, campaign_id) as lock:
        with transaction(url) as session:
            campaign = session.get_one(Campaign, campaign_id)
            campaign.state, campaign.stop_requested = CampaignState.running.value, False
            campaign.stop_reason, campaign.updated_at = None, utcnow()
            config_check = campaign_config(campaign)
        start = time.perf_counter()
        outcome = RunOutcome(name, CampaignState.running.value, None, "")
        _active_runs[campaign_id] = (lock, start)

        def run_one(index: int, step: StepName) -> dict[str, Any]:
            if step_runner is not None:
                return step_runner(index, step)
            return execute_step(
                url, campaign_id, index, step, workers=workers, executor=executor, reporter=reporter
            )

        iterations_this_run = 0
        try:
            while True:
                finished = _finished_iterations(url, campaign_id)
                elapsed = run_before + time.perf_counter() - start
                with transaction(url, read_only=True) as session:
                    campaign = session.get_one(Campaign, campaign_id)
                    decision = check_stopping(session, campaign, config_check, finished, elapsed)
                    stop_requested = campaign.stop_requested
                if decision.reason is not None:
                    _finish(
                        url,
                        campaign_id,
                        CampaignState.finished,
                        decision,
                        time.perf_counter() - start,
                    )
                    outcome.state, outcome.stop_reason = (
                        CampaignState.finished.value,
                        decision.reason,
                    )
                    outcome.message = decision.message
                    return outcome
                if stop_requested or lock.lost:
                    reason = "stop_requested" if stop_requested else "lock_lost"
                    message = (
                        "stopped on request after its current step"
                        if stop_requested
                        else "another process took over the campaign lock"
                    )
                    _finish(
                        url,
                        campaign_id,
                        CampaignState.stopped,
                        StopDecision(reason, {}, message),
                        time.perf_counter() - start,
                    )
                    outcome.state, outcome.stop_reason, outcome.message = (
                        CampaignState.stopped.value,
                        reason,
                        message,
                    )
                    return outcome
                index, step = next_step(url, campaign_id)
                if (
                    step == STEP_ORDER[0]
                    and iterations is not None
                    and iterations_this_run >= iterations
                ):
                    message = f"ran {iterations} iteration(s) this run; resume to continue"
                    _finish(
                        url,
                        campaign_id,
                        CampaignState.stopped,
                        StopDecision("run_limit", {"iterations": iterations}, message),
                        time.perf_counter() - start,
                    )
                    outcome.state, outcome.stop_reason, outcome.message = (
                        CampaignState.stopped.value,
                        "run_limit",
                        message,
                    )
                    return outcome
                run_one(index, step)
                outcome.steps_run.append((index, step.value))
                if step == StepName.summary:
                    iterations_this_run += 1
        except BaseException as error:
            reason = "step_failed" if isinstance(error, StepFailedError) else "interrupted"
            message = (
                str(error)
                if isinstance(error, StepFailedError)
                else f"interrupted ({type(error).__name__})"
            )
            _finish(
                url,
                campaign_id,
                CampaignState.stopped,
                StopDecision(reason, {}, message),
                time.perf_counter() - start,
            )
            raise
        finally:
            _active_runs.pop(campaign_id, None)
