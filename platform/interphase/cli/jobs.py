"""``interphase jobs``: list, inspect, resubmit and run labeling jobs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

if TYPE_CHECKING:
    from interphase.labeling.jobs import JobFilter

app = typer.Typer(help="Labeling jobs: create, list, show, resubmit, run.", no_args_is_help=True)

StateOption = Annotated[
    str | None, typer.Option(help="pending, running, succeeded, failed or cancelled.")
]
ErrorClassOption = Annotated[
    str | None, typer.Option("--error-class", help="e.g. SCFNotConverged, Timeout.")
]
CampaignOption = Annotated[str | None, typer.Option(help="Campaign name or id.")]
LevelOption = Annotated[str | None, typer.Option(help="Level of theory, e.g. GFN2-xTB.")]
EngineOption = Annotated[str | None, typer.Option(help="Engine: tblite, psi4, pyscf, gpaw.")]


def _filter(
    ids: list[int] | None,
    state: str | None,
    error_class: str | None,
    campaign: str | None,
    level: str | None,
    engine: str | None,
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
    )


@app.command("list")
def list_jobs(
    state: StateOption = None,
    error_class: ErrorClassOption = None,
    campaign: CampaignOption = None,
    level: LevelOption = None,
    engine: EngineOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many jobs.")] = 100,
) -> None:
    """Jobs with their state, attempts and last error, oldest first."""
    from interphase.db.session import transaction

    try:
        open_database()
        selection = _filter(None, state, error_class, campaign, level, engine)
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
    """One job: settings, every attempt with its outcome, and the last log tail."""
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
            console.print(f"settings: {json.dumps(job.settings, sort_keys=True)}")
            if job.error_class:
                console.print(f"last error: {job.error_class}: {job.error_message}")
            tail = None
            for attempt in job.attempts:
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
                tail = attempt.log_tail or tail
    except USER_ERRORS as error:
        fail(error)
    if tail:
        console.rule("log tail (last failed attempt)")
        console.print(tail, markup=False, highlight=False)


@app.command()
def resubmit(
    ids: Annotated[list[int] | None, typer.Argument(help="Job ids (or select by options).")] = None,
    state: StateOption = None,
    error_class: ErrorClassOption = None,
    campaign: CampaignOption = None,
    level: LevelOption = None,
    engine: EngineOption = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Setting to change, key=value (JSON value); repeatable."),
    ] = None,
) -> None:
    """Put failed jobs back to pending, optionally with changed settings; history is kept."""
    from interphase.db.session import transaction
    from interphase.labeling.jobs import JobSelectionError, parse_assignments
    from interphase.labeling.jobs import resubmit_jobs as resubmit_selected

    try:
        open_database()
        if not ids and state is None and error_class is None and campaign is None:
            raise JobSelectionError("give job ids or select with --state/--error-class/--campaign")
        selection = _filter(ids, state, error_class, campaign, level, engine)
        changes = parse_assignments(set_ or [])
        with transaction() as session:
            resubmitted = resubmit_selected(session, selection, changes)
    except USER_ERRORS as error:
        fail(error)
    shown = ", ".join(map(str, resubmitted[:20])) + (" …" if len(resubmitted) > 20 else "")
    console.print(f"resubmitted {len(resubmitted)} job(s): {shown}")
    if changes:
        console.print(f"with settings {json.dumps(changes, sort_keys=True)}")


@app.command()
def run(
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    engine: EngineOption = None,
    level: LevelOption = None,
    lease_s: Annotated[float, typer.Option(help="Lease length (s).")] = 300.0,
    time_limit_s: Annotated[
        float | None, typer.Option(help="Default wall-time limit per isolated job (s).")
    ] = 24 * 3600.0,
    memory_limit_mb: Annotated[
        float | None, typer.Option(help="Default memory limit per isolated job (MB).")
    ] = None,
    retry: Annotated[bool, typer.Option(help="Apply the automatic retry policy.")] = True,
) -> None:
    """Drain the pending jobs with a progress bar."""
    from sqlalchemy.exc import NoResultFound

    from interphase.campaign import level_id as find_level_id
    from interphase.cli.common import progress
    from interphase.labeling.jobs import run_workers
    from interphase.labeling.queue import WorkerOptions
    from interphase.labeling.retry import RetryPolicy

    options = WorkerOptions(
        lease_s=lease_s,
        heartbeat_s=max(min(lease_s / 4.0, 30.0), 0.2),
        time_limit_s=time_limit_s,
        memory_limit_mb=memory_limit_mb,
        retry=RetryPolicy() if retry else RetryPolicy.no_retries(),
    )
    try:
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
    if report is not None:
        err_console.print(
            f"succeeded {report.succeeded}, failed {report.failed}, "
            f"retried {report.retried}, abandoned {report.abandoned}"
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
