"""``interphase jobs``: create, list, inspect, cancel and resubmit labeling jobs.

``jobs run`` is :mod:`interphase.cli.jobs_run`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from interphase.cli.arguments import (
    check_campaign,
    check_engine,
    impossible_ids,
    setting_assignments,
)
from interphase.cli.common import (
    USER_ERRORS,
    console,
    err_console,
    fail,
    one_line,
    open_database,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Setting to change, key=value (JSON value); repeatable."),
]
#: Characters of a job's last error message that `jobs list` shows.
MESSAGE_CHARS = 60


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
    missing = impossible_ids(ids or [])
    if missing:
        raise JobSelectionError(f"no jobs with ids {missing[:10]}")
    check_campaign(campaign)
    check_engine(engine)
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
    limit: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Show at most this many jobs (the newest).")
    ] = 100,
) -> None:
    """Jobs with their structure, state, attempts and last error, newest first."""
    from interphase.db.models import LabelingJob
    from interphase.db.session import transaction
    from interphase.labeling.jobs import count_matching

    try:
        open_database(create=False)
        selection = _filter(None, state, error_class, campaign, level, engine, message)
        with transaction(read_only=True) as session:
            newest_first = selection.query().order_by(None).order_by(LabelingJob.id.desc())
            jobs = session.scalars(newest_first.limit(limit)).all()
            matching = count_matching(session, selection)
            table = Table(
                "id", "structure", "state", "level", "engine", "attempts", "error class",
                "message", "worker",
            )  # fmt: skip
            for job in jobs:
                table.add_row(
                    str(job.id), str(job.structure_id), job.state.value, job.level.name,
                    job.level.engine or "", str(job.attempt), job.error_class or "",
                    _short(job.error_message), job.worker or "",
                )  # fmt: skip
    except USER_ERRORS as error:
        fail(error)
    console.print(table)
    if matching > len(jobs):
        console.print(
            f"the newest {len(jobs):,} of {matching:,} matching jobs; "
            "--limit N shows more, `jobs show ID` one in full"
        )


def _short(message: str | None) -> str:
    """A job's last error message on one line, cut to :data:`MESSAGE_CHARS` characters."""
    text = one_line(message or "").strip()
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


@app.command()
def show(job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """One job: settings, and every attempt with its outcome and its own log tail."""
    from interphase.db.models import LabelingJob
    from interphase.db.session import transaction

    try:
        open_database(create=False)
        with transaction(read_only=True) as session:
            job = None if impossible_ids([job_id]) else session.get(LabelingJob, job_id)
            if job is None:
                raise KeyError(f"no labeling job with id {job_id}")
            console.print(
                f"job {job.id}: [bold]{job.state.value}[/] · level {escape(job.level.name)} "
                f"({escape(str(job.level.engine))}) · structure {job.structure_id} · "
                f"reason {job.reason.value}",
                markup=True,
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
    details = (
        f"trigger {attempt.trigger or '?'} · {attempt.engine} "
        f"{attempt.engine_version or ''} · worker {attempt.worker or attempt.host} · "
        f"pid {attempt.pid} · exit {attempt.exit_code}{wall}"
    )
    console.print(
        f"attempt {attempt.number}: [bold]{attempt.state.value}[/] · {escape(details)}",
        soft_wrap=True,
        markup=True,
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
        console.print(f"--- log tail of attempt {attempt.number} ---", highlight=False)
        console.print(attempt.log_tail, highlight=False)
        console.print("---", highlight=False)


@app.command()
def resubmit(
    ids: IdsArgument = None,
    state: StateOption = None,
    error_class: ErrorClassOption = None,
    campaign: CampaignOption = None,
    level: LevelOption = None,
    engine: EngineOption = None,
    message: MessageOption = None,
    set_: SetOption = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="Setting to remove; repeatable.")
    ] = None,
) -> None:
    """Put failed or cancelled jobs back to pending (pending ones: change settings only).

    Each resubmitted job starts a fresh retry budget; its history is kept.
    """
    from interphase.db.session import transaction
    from interphase.labeling.jobs import JobSelectionError, count_matching
    from interphase.labeling.jobs import resubmit_jobs as resubmit_selected

    try:
        open_database(create=False)
        selection = _filter(ids, state, error_class, campaign, level, engine, message)
        if selection.is_empty():
            raise JobSelectionError(
                "give job ids or select with --state/--error-class/--campaign/--level/--engine"
            )
        changes = setting_assignments(set_ or [])
        with transaction() as session:
            matching = count_matching(session, selection)  # before: resubmitting changes states
            resubmitted = resubmit_selected(session, selection, changes, unset or ())
            skipped = matching - len(resubmitted)
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
        open_database(create=False)
        selection = _filter(ids, state, error_class, campaign, level, engine, message)
        if selection.is_empty():
            raise JobSelectionError(
                "give job ids or select with --state/--error-class/--campaign/--level/--engine"
            )
        with transaction() as session:
            matching = count_matching(session, selection)  # before: cancelling changes states
            cancelled = cancel_jobs(session, selection)
            skipped = matching - len(cancelled)
    except USER_ERRORS as error:
        fail(error)
    console.print(f"cancelled {len(cancelled)} job(s): {_shown(cancelled)}")
    if skipped:
        console.print(
            f"skipped {skipped} matching job(s) that are running, succeeded or cancelled already"
        )


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
    set_: SetOption = None,
) -> None:
    """Queue labeling jobs for structures with no label or job at the level yet.

    `interphase structures list` shows the structures and their ids.
    """
    from interphase.db.session import transaction
    from interphase.labeling.jobs import JobSelectionError, queue_labeling_jobs

    try:
        changes = setting_assignments(set_ or [])
        missing = impossible_ids(ids or [])
        if missing:
            raise JobSelectionError(f"no structures with ids {missing[:10]}")
        check_campaign(campaign)
        open_database()
        with transaction() as session:
            queued = queue_labeling_jobs(
                session, level, structure_ids=ids or (), generator=generator, campaign=campaign
            )
            _apply_settings(session, level, queued.job_ids, changes)
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
    if changes:
        console.print(f"with settings {json.dumps(changes, sort_keys=True)}")


def _apply_settings(
    session: Session, level: str, job_ids: list[int], changes: dict[str, object]
) -> None:
    """``changes`` applied to the new jobs' settings, checked against the level's engine.

    Checked even when no job was queued, so a bad ``--set`` is always an error.

    Raises
    ------
    JobSettingsError
        For a key or value the engine (or the queue) does not take.
    """
    from sqlalchemy import select

    from interphase.db.models import LabelingJob, LevelOfTheory
    from interphase.labeling.job_settings import changed_settings

    if not changes:
        return
    engine = session.scalar(select(LevelOfTheory.engine).where(LevelOfTheory.name == level))
    changed_settings({}, changes, (), engine)
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        for job in session.scalars(select(LabelingJob).where(LabelingJob.id.in_(chunk))):
            job.settings = changed_settings(job.settings, changes, (), job.level.engine)
