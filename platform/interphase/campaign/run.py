"""Running a campaign: the first unfinished step, again, until a stopping rule fires.

The steps and their order are :mod:`interphase.campaign.loop`'s;
:func:`execute_step` runs and records one, and :class:`CampaignRun` owns a
run's lock, its stop and its end. :func:`run_campaign` has no Prefect in it; the Prefect
flow (``interphase_flows.campaign``) passes a ``step_runner`` that runs each
step as a Prefect task. A campaign is resumable at any point: finished steps
are recorded with their outputs, so the loop always continues with the first
step that has not succeeded.
"""

from __future__ import annotations

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
from interphase.campaign.loop import STEP_ORDER, run_step
from interphase.campaign.progress import ProgressRecorder
from interphase.campaign.records import (
    StepName,
    begin_step,
    campaign_config,
    create_campaign,
    fail_step,
    find_campaign,
    get_iteration,
    held_out_ids,
    steps_of,
)
from interphase.campaign.steps.contract import StepOutputs
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


class CampaignFinishedError(RuntimeError):
    """The campaign has finished: a stopping rule fired."""


class StepFailedError(RuntimeError):
    """A step raised; the campaign stopped there and can be resumed."""


class Reporter(Protocol):
    def step_started(self, iteration: int, step: StepName) -> None: ...

    def step_finished(
        self, iteration: int, step: StepName, outputs: StepOutputs, seconds: float
    ) -> None: ...

    def progress(self, description: str, done: int, total: int | None) -> None: ...


class SilentReporter:
    def step_started(self, iteration: int, step: StepName) -> None:
        return None

    def step_finished(
        self, iteration: int, step: StepName, outputs: StepOutputs, seconds: float
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
    """Run one step of one iteration and record it; returns its outputs as stored (JSON)."""
    reporter = reporter or SilentReporter()
    if executor is None and step in DISTRIBUTED_STEPS:
        with transaction(url, read_only=True) as session:
            config = campaign_config(session.get_one(Campaign, campaign_id))
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
        test_ids = frozenset(held_out_ids(session, campaign_id))
    n_workers = workers or config.executor.workers

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
        executor=executor or LocalExecutor(workers=config.executor.workers),
        workers=n_workers,
        progress=progress,
        display_progress=reporter.progress,
        test_ids=test_ids,
    )
    reporter.step_started(index, step)
    try:
        outputs = run_step(ctx)
    except Exception as error:
        detail = "".join(traceback.format_exception(error)[-12:])
        with transaction(url) as session:
            fail_step(session, campaign_id, index, step, detail)
        raise StepFailedError(f"iteration {index} step {step.value} failed: {error}") from error
    reporter.step_finished(index, step, outputs, ctx.seconds)
    return outputs.model_dump(mode="json")


StepRunner = Callable[[int, StepName], dict[str, Any]]

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


#: Runs this process holds now, by campaign id (see :func:`abandon_active_runs`).
_active_runs: dict[int, CampaignRun] = {}


@dataclass
class CampaignRun:
    """One run (or resume) of a campaign: it holds the lock, stops, and records the end."""

    url: str | None
    campaign_id: int
    lock: CampaignLock
    config: CampaignConfig
    #: ``campaign.run_seconds`` before this run (the wall-clock rule counts all runs).
    seconds_before: float
    outcome: RunOutcome
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def begin(cls, url: str | None, campaign_id: int, lock: CampaignLock) -> CampaignRun:
        """Mark the campaign running (under ``lock``) and register the run in this process."""
        with transaction(url) as session:
            campaign = session.get_one(Campaign, campaign_id)
            campaign.state, campaign.stop_requested = CampaignState.running.value, False
            campaign.stop_reason, campaign.updated_at = None, utcnow()
            run = cls(
                url,
                campaign_id,
                lock,
                campaign_config(campaign),
                campaign.run_seconds,
                RunOutcome(campaign.name, CampaignState.running.value, None, ""),
            )
        _active_runs[campaign_id] = run
        return run

    @property
    def seconds(self) -> float:
        """Seconds since this run started."""
        return time.perf_counter() - self.started

    def stop_now(self) -> RunOutcome | None:
        """The run's end when a stopping rule fired, a stop was asked for or the lock lost."""
        finished = _finished_iterations(self.url, self.campaign_id)
        with transaction(self.url, read_only=True) as session:
            campaign = session.get_one(Campaign, self.campaign_id)
            elapsed = self.seconds_before + self.seconds
            decision = check_stopping(session, campaign, self.config, finished, elapsed)
            stop_requested = campaign.stop_requested
        if decision.reason is not None:
            return self.finish(CampaignState.finished, decision)
        if stop_requested:
            message = "stopped on request after its current step"
            return self.finish(CampaignState.stopped, StopDecision("stop_requested", {}, message))
        if self.lock.lost:
            message = "another process took over the campaign lock"
            return self.finish(CampaignState.stopped, StopDecision("lock_lost", {}, message))
        return None

    def finish(self, state: CampaignState, decision: StopDecision) -> RunOutcome:
        """Record how the run ended (the campaign's state, reason and time) and return it."""
        with transaction(self.url) as session:
            campaign = session.get_one(Campaign, self.campaign_id)
            campaign.state = state.value
            campaign.stop_reason = decision.reason
            campaign.stop_detail = {**decision.detail, "message": decision.message}
            campaign.stop_requested = False
            campaign.run_seconds += self.seconds
            campaign.updated_at = utcnow()
        self.outcome.state, self.outcome.stop_reason = state.value, decision.reason
        self.outcome.message = decision.message
        return self.outcome

    def interrupted(self, error: BaseException) -> None:
        """Record the run as stopped by a failed step or an interruption (resumable)."""
        if isinstance(error, StepFailedError):
            decision = StopDecision("step_failed", {}, str(error))
        else:
            decision = StopDecision("interrupted", {}, f"interrupted ({type(error).__name__})")
        self.finish(CampaignState.stopped, decision)


def abandon_active_runs(message: str) -> None:
    """Record every run this process holds as stopped (interrupted) and release its lock.

    For a process about to exit without unwinding (``os._exit``), when the code
    around the loop cannot run any more: a scheduled run whose ``interphase
    serve`` died, whose Prefect API went with it. The campaign stays resumable
    at the step that was running, as after any interruption.
    """
    for campaign_id, run in list(_active_runs.items()):
        run.finish(CampaignState.stopped, StopDecision("interrupted", {}, message))
        run.lock.release()
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


def _resumable(url: str | None, name: str) -> int:
    """The id of campaign ``name``; refuses a finished one, or an unreachable executor."""
    with transaction(url) as session:
        campaign = find_campaign(session, name)
        check_reachable(campaign_config(campaign).executor, url or database_url())
        if campaign.state == CampaignState.finished.value:
            raise CampaignFinishedError(
                f"campaign {name!r} finished ({campaign.stop_reason}: "
                f"{campaign.stop_detail.get('message', '')}); nothing to resume"
            )
        return campaign.id


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
    campaign_id = _resumable(url, name)

    def run_one(index: int, step: StepName) -> None:
        if step_runner is not None:
            step_runner(index, step)
        else:
            execute_step(
                url, campaign_id, index, step, workers=workers, executor=executor, reporter=reporter
            )

    with CampaignLock(url, campaign_id) as lock:
        run = CampaignRun.begin(url, campaign_id, lock)
        iterations_this_run = 0
        try:
            while (ended := run.stop_now()) is None:
                index, step = next_step(url, campaign_id)
                limit_reached = iterations is not None and iterations_this_run >= iterations
                if step == STEP_ORDER[0] and limit_reached:
                    message = f"ran {iterations} iteration(s) this run; resume to continue"
                    limit = StopDecision("run_limit", {"iterations": iterations}, message)
                    return run.finish(CampaignState.stopped, limit)
                run_one(index, step)
                run.outcome.steps_run.append((index, step.value))
                if step == STEP_ORDER[-1]:
                    iterations_this_run += 1
            return ended
        except BaseException as error:
            run.interrupted(error)
            raise
        finally:
            _active_runs.pop(campaign_id, None)
