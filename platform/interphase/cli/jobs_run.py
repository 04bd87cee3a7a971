"""``interphase jobs run``: drain the labeling queue with one or more worker processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from interphase.cli.arguments import check_engine, check_workers
from interphase.cli.common import USER_ERRORS, err_console, fail, open_database, print_error
from interphase.cli.jobs import EngineOption, LevelOption

if TYPE_CHECKING:
    from interphase.labeling.queue.run import DrainReport
    from interphase.labeling.queue.worker_options import WorkerOptions


def run(
    workers: Annotated[
        int, typer.Option(help="Worker processes (1 to 4 per core; 1 runs in this process).")
    ] = 1,
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
    """Drain the pending jobs with a progress bar, then print what the attempts did.

    Ctrl-C or SIGTERM stops the running calculations and puts their jobs back to
    pending at once (exit status 130 or 143).
    """
    from interphase.labeling.queue.parallel import WorkersFailedError
    from interphase.labeling.queue.retry import RetryPolicy
    from interphase.labeling.queue.signals import WorkerInterrupted
    from interphase.labeling.queue.worker_options import WorkerOptions

    try:
        check_workers(workers)
        check_engine(engine)
        options = WorkerOptions(
            lease_s=lease_s,
            time_limit_s=time_limit_s,
            memory_limit_mb=memory_limit_mb,
            retry=RetryPolicy() if retry else RetryPolicy.no_retries(),
        )
        open_database(create=False)
        report = _drain(workers, engine, _level_id(level), options)
    except USER_ERRORS as error:
        fail(error)
    except WorkerInterrupted as stop:
        err_console.print(f"{stop}", soft_wrap=True)
        raise typer.Exit(code=stop.exit_status) from None
    except WorkersFailedError as error:
        print_error(error)
        raise typer.Exit(code=1) from None
    err_console.print(
        f"succeeded {report.succeeded}, already labeled {report.already_labeled}, "
        f"failed {report.failed}, retried {report.retried}, abandoned {report.abandoned}"
    )


def _level_id(level: str | None) -> int | None:
    from sqlalchemy.exc import NoResultFound

    from interphase.db.levels import level_id

    if level is None:
        return None
    try:
        return level_id(None, level)
    except NoResultFound:
        raise KeyError(f"no level of theory named {level!r} in the database") from None


def _drain(
    workers: int, engine: str | None, level_id: int | None, options: WorkerOptions
) -> DrainReport:
    """Run the workers; the counts of one in-process worker, or of every attempt they made.

    Worker processes report nothing back, so their counts are read from the
    attempts recorded since the drain started (the same counts one worker keeps).
    """
    from interphase.cli.common import progress
    from interphase.db.session import transaction
    from interphase.labeling.queue.parallel import run_workers
    from interphase.status import drain_report, last_attempt_id

    with transaction(read_only=True) as session:
        start = last_attempt_id(session)
    with progress("jobs") as bar:
        task = bar.add_task("labeling", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_workers(
            None, workers, engine=engine, level_id=level_id, options=options, progress=update
        )
    if report is None:
        with transaction(read_only=True) as session:
            report = drain_report(session, start, engine=engine, level_id=level_id)
    return report
