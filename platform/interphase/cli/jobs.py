"""``interphase jobs``: create, list, inspect, cancel, resubmit and run labeling jobs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

if TYPE_CHECKING:
    from interphase.db.models import JobAttempt
    from interphase.labeling.jobs import JobFilter

app = typer.Typer(
    help="Labeling jobs: create, list, show, cancel, resubmit, run.", no_args_is_help=True
)

StateOption = Annotated[
    str | None, typer.Option(help="pending, running, succeeded, failed or cancelled.")
]
ErrorClassOption = Annotated[
    str | None, typer.Option("--error-class", help="e.g. SCFNotConverged, Timeout.")
]
CampaignOption = Annotated[str | None, typer.Option(help="Campaign name or id.")]
LevelOption = Annotated[str | None, typer.Option(help="Level of theory, e.g. GFN2-xTB.")]
EngineOption = Annotated[str | None, typer.Option(help="Engine: tblite, psi4, pyscf, gpaw.")]
MessageOption = Annotated[
    str | None, typer.Option(help="Only jobs whose last error message contains this text.")
]
IdsArgument = Annotated[list[int] | None, typer.Argument(help="Job ids (or select by options).")]


def _filter(
    ids: list[int] | None,
    state: str | None,
    error_class: str | None,
    campaign: str | None,
    level: str | None,
    engine: str | None,
    message: str | None = None,
) -> JobFilter:
    from interphase.db.models import JobState
    from interphase.labeling.jobs import JobFilter, JobSelectionError

    try:
        job_state = JobState(state) if state is not None else None
    except ValueError:
        raise JobSelectionError(
            f"unknown state {state!r}; choose {', '.join(s.value for s in JobState)}"
        ) from None
    return JobFilter(
        ids=tuple(ids or ()),
        state=job_state,
        error_class=error_class,
        campaign=campaign,
        level=level,
        engine=engine,
        message=message,
    )


def _shown(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:20])) + (" …" if len(ids) > 20 else "")


@app.command("list")
def list_jobs(
    state: StateOption = None,
    error_class: ErrorClassOption = None,
    campaign: CampaignOption = None,
    level: LevelOption = None,
    engine: EngineOption = None,
    message: MessageOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many jobs.")] = 100,
) -> None:
    """Jobs with their state, attempts and last error, oldest first."""
    from interphase.db.session import transaction

    try:
        open_database()
        selection = _filter(None, state, error_class, campaign, level, engine, message)
        with transaction() as session:
            jobs = session.scalars(selection.query().limit(limit)).all()
            table = Table("id", "state", "level", "engine", "attempts", "error class", "worker")
            for job in jobs:
                table.add_row(
                    str(job.id),
                    job.state.value,
                    job.level.name,
                    job.level.engine or "",
                    str(job.attempt),
                    job.error_class or "",
                    job.worker or "",
                )
    except USER_ERRORS as error:
        fail(error)
    console.print(table)


@app.command()
def show(job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """One job: settings, and every attempt with its outcome and its own log tail."""
    from interphase.db.models import LabelingJob
    from interphase.db.session import transaction

    try:
        open_database()
        with transaction() as session:
            job = session.get(LabelingJob, job_id)
            if job is None:
                raise KeyError(f"no labeling job with id {job_id}")
            console.print(
                f"job {job.id}: [bold]{job.state.value}[/] · level {job.level.name} "
                f"({job.level.engine}) · structure {job.structure_id} · reason {job.reason.value}"
            )
            console.print(f"settings: {json.dumps(job.settings, sort_keys=True)}", markup=False)
            if job.error_class:
                console.print(f"last error: {job.error_class}: {job.error_message}", markup=False)
            for attempt in job.attempts:
                _print_attempt(attempt)
    except USER_ERRORS as error:
        fail(error)


def _print_attempt(attempt: JobAttempt) -> None:
    wall = "" if attempt.wall_time_s is None else f" · {attempt.wall_time_s:.2f} s"
    console.print(
        f"attempt {attempt.number}: [bold]{attempt.state.value}[/] · "
        f"trigger {attempt.trigger or '?'} · {attempt.engine} "
        f"{attempt.engine_version or ''} · worker {attempt.worker or attempt.host} · "
        f"pid {attempt.pid} · exit {attempt.exit_code}{wall}",
        soft_wrap=True,
    )
    console.print(
        f"  settings: {json.dumps(attempt.settings, sort_keys=True)}",
        soft_wrap=True,
        markup=False,
    )
    if attempt.error_class:
        console.print(
            f"  error: {attempt.error_class}: {attempt.error_message}",
            soft_wrap=True,
            markup=False,
        )
    elif attempt.error_message:
        console.print(f"  note: {attempt.error_message}", soft_wrap=True, markup=False)
    if attempt.log_tail:
        console.rule(f"log tail of attempt {attempt.number}")
        console.print(attempt.log_tail, markup=False, highlight=False)
        console.rule()


@app.command()
def resubmit(
    ids: IdsArgument = None,
    state: StateOption = None,
    error_class: ErrorClassOption = None,
    campaign: CampaignOption = None,
    level: LevelOption = None,
    engine: EngineOption = None,
    message: MessageOption = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Setting to change, key=value (JSON value); repeatable."),
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="Setting to remove; repeatable.")
    ] = None,
) -> None:
    """Put failed or cancelled jobs back to pending (pending ones: change settings only).

    Each resubmitted job starts a fresh retry budget; its history is kept.
    """
    from interphase.db.session import transaction
    from interphase.labeling.jobs import JobSelectionError, count_matching, parse_assignments
    from interphase.labeling.jobs import resubmit_jobs as resubmit_selected

    try:
        open_database()
        selection = _filter(ids, state, error_class, campaign, level, engine, message)
        if selection.is_empty():
            raise JobSelectionError(
                "give job ids or select with --state/--error-class/--campaign/--level/--engine"
            )
        changes = parse_assignments(set_ or [])
        with transaction() as session:
            resubmitted = resubmit_selected(session, selection, changes, unset or ())
            skipped = count_matching(session, selection) - len(resubmitted)
    except USER_ERRORS as error:
        fail(error)
    console.print(f"resubmitted {len(resubmitted)} job(s): {_shown(resubmitted)}")
    if skipped:
        console.print(f"skipped {skipped} matching job(s) that are running, succeeded or pending")
    if changes or unset:
        console.print(
            f"with settings {json.dumps(changes, sort_keys=True)}"
            + (f", unset {', '.join(unset or [])}" if unset else ""),
            markup=False,
        )


@app.command()
def cancel(
    ids: IdsArgument = None,
    state: StateOption = None,
    error_class: ErrorClassOption = None,
    campaign: CampaignOption = None,
    level: LevelOption = None,
    engine: EngineOption = None,
    message: MessageOption = None,
) -> None:
    """Cancel pending (or failed) jobs so no worker takes them; `resubmit` brings them back."""
    from interphase.db.session import transaction
    from interphase.labeling.jobs import JobSelectionError, cancel_jobs, count_matching

    try:
        open_database()
        selection = _filter(ids, state, error_class, campaign, level, engine, message)
        if selection.is_empty():
            raise JobSelectionError(
                "give job ids or select with --state/--error-class/--campaign/--level/--engine"
            )
        with transaction() as session:
            cancelled = cancel_jobs(session, selection)
            skipped = count_matching(session, selection) - len(cancelled)
    except USER_ERRORS as error:
        fail(error)
    console.print(f"cancelled {len(cancelled)} job(s): {_shown(cancelled)}")
    if skipped:
        console.print(
            f"skipped {skipped} matching job(s) that are running, succeeded or cancelled already"
        )


@app.command()
def run(
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    engine: EngineOption = None,
    level: LevelOption = None,
    lease_s: Annotated[
        float, typer.Option(help="Lease length (s); at least 5, renewed every quarter.")
    ] = 300.0,
    time_limit_s: Annotated[
        float | None, typer.Option(help="Default wall-time limit per isolated job (s).")
    ] = 24 * 3600.0,
    memory_limit_mb: Annotated[
        float | None, typer.Option(help="Default memory limit per isolated job (MB).")
    ] = None,
    retry: Annotated[bool, typer.Option(help="Apply the automatic retry policy.")] = True,
) -> None:
    """Drain the pending jobs with a progress bar.

    Ctrl-C or SIGTERM stops the running calculations and puts their jobs back to
    pending at once (exit status 130 or 143).
    """
    from sqlalchemy.exc import NoResultFound

    from interphase.cli.common import progress
    from interphase.db.api import level_id as find_level_id
    from interphase.labeling.options import WorkerOptions
    from interphase.labeling.retry import RetryPolicy
    from interphase.labeling.signals import WorkerInterrupted
    from interphase.labeling.workers import WorkersFailedError, run_workers

    try:
        options = WorkerOptions(
            lease_s=lease_s,
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            retry=RetryPolicy() if retry else RetryPolicy.no_retries(),
        )
        open_database()
        try:
            level_id = find_level_id(None, level) if level is not None else None
        except NoResultFound:
            raise KeyError(f"no level of theory named {level!r} in the database") from None
        with progress("jobs") as bar:
            task = bar.add_task("labeling", total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = run_workers(
                None, workers, engine=engine, level_id=level_id, options=options, progress=update
            )
    except USER_ERRORS as error:
        fail(error)
    except WorkerInterrupted as stop:
        err_console.print(f"{stop}", soft_wrap=True, markup=False)
        raise typer.Exit(code=stop.exit_status) from None
    except WorkersFailedError as error:
        err_console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    if report is not None:
        err_console.print(
            f"succeeded {report.succeeded}, already labeled {report.already_labeled}, "
            f"failed {report.failed}, retried {report.retried}, abandoned {report.abandoned}"
        )
    else:
        err_console.print("workers finished; see `interphase jobs list`")


@app.command()
def create(
    level: Annotated[str, typer.Option(help="Level of theory, e.g. GFN2-xTB or PBE-D3.")],
    ids: Annotated[
        list[int] | None, typer.Argument(help="Structure ids (default: all unlabeled).")
    ] = None,
    generator: Annotated[
        str | None, typer.Option(help="Only structures made by this generator.")
    ] = None,
    campaign: CampaignOption = None,
) -> None:
    """Queue labeling jobs for structures with no label or job at the level yet."""
    from interphase.db.session import transaction
    from interphase.labeling.jobs import queue_labeling_jobs

    try:
        open_database()
        with transaction() as session:
            queued = queue_labeling_jobs(
                session, level, structure_ids=ids or (), generator=generator, campaign=campaign
            )
    except USER_ERRORS as error:
        fail(error)
    if queued.skipped:
        err_console.print(
            f"skipped {queued.skipped} {queued.skipped_kind} the level does not treat"
        )
    if not queued.job_ids:
        console.print(f"nothing to queue at {level}: every selected structure has a label or job")
        return
    console.print(
        f"queued {len(queued.job_ids)} job(s) at {level} "
        f"({queued.job_ids[0]}…{queued.job_ids[-1]}); run them with `interphase jobs run`"
    )
