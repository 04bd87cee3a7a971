"""``interphase campaign``: validate, run, resume, list, show, stop, export and delete campaigns."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Column, Table

from interphase.cli.arguments import check_workers
from interphase.cli.common import (
    PATH_ERRORS,
    USER_ERRORS,
    console,
    err_console,
    fail,
    open_database,
    print_error,
    progress,
)

if TYPE_CHECKING:
    from interphase.campaign.steps.contract import StepOutputs

app = typer.Typer(help="Active-learning campaigns: the whole loop from one configuration file.")

NameArgument = Annotated[str, typer.Argument(help="Campaign name.")]
WorkersOption = Annotated[
    int | None, typer.Option(min=1, help="Labeling worker processes (default: the file's).")
]
IterationsOption = Annotated[
    int | None, typer.Option(min=1, help="Stop this run after N more iterations (resumable).")
]


def _campaign_errors() -> tuple[type[Exception], ...]:
    from interphase.campaign.lock import CampaignBusyError
    from interphase.campaign.records import CampaignNotFoundError
    from interphase.campaign.run import CampaignFinishedError

    return (*USER_ERRORS, CampaignBusyError, CampaignNotFoundError, CampaignFinishedError)


class ConsoleReporter:
    """Step lines on stdout, a transient progress bar on stderr."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: Any = None

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def step_started(self, iteration: int, step: Any) -> None:
        self._close()
        self._bar = progress("")
        self._bar.start()
        self._task = self._bar.add_task(f"iteration {iteration} · {step.value}", total=None)

    def progress(self, description: str, done: int, total: int | None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=description, completed=done, total=total)

    def step_finished(
        self, iteration: int, step: Any, outputs: StepOutputs, seconds: float
    ) -> None:
        self._close()
        console.print(
            f"[green]✓[/] iteration {iteration} · {step.value}: "
            f"{escape(outputs.note())} [dim]({seconds:.1f} s)[/]",
            markup=True,
        )


def _interrupted(signum: int, _frame: Any) -> None:
    from interphase.labeling.queue.signals import WorkerInterrupted

    raise WorkerInterrupted(signum)


def _run_flow(name: str, iterations: int | None, workers: int | None) -> dict[str, Any]:
    from interphase.campaign.run import StepFailedError
    from interphase.labeling.queue.signals import WorkerInterrupted
    from interphase.settings import get_settings
    from interphase_flows.runtime import prefect_api

    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        with prefect_api(get_settings().data_dir):
            from interphase_flows.campaign import campaign_flow, set_reporter

            set_reporter(ConsoleReporter())
            return campaign_flow(name, iterations=iterations, workers=workers)
    except StepFailedError as error:
        print_error(
            f"{error}. Fix the cause, then `interphase campaign resume {name}` continues "
            "with this step"
        )
        raise typer.Exit(code=1) from None
    except (KeyboardInterrupt, WorkerInterrupted) as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        err_console.print(
            f"interrupted: running jobs were released; continue with "
            f"`interphase campaign resume {name}`"
        )
        raise typer.Exit(code=128 + int(signum)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(name: str, outcome: dict[str, Any], started: float) -> None:
    from interphase.campaign.records import find_campaign
    from interphase.campaign.report import campaign_story, label_lineage
    from interphase.db.session import transaction

    with transaction(read_only=True) as session:
        lines = campaign_story(session, name)
        lineage = label_lineage(session, find_campaign(session, name).id)
    console.print()
    for line in lines:
        console.print(line, highlight=False)
    if lineage:
        console.print("lineage of one uncertainty-selected label:")
        for line in lineage:
            console.print(line, highlight=False)
    console.print(f"{time.perf_counter() - started:.0f} s in all", style="dim")


@app.command("validate")
def validate(path: Annotated[Path, typer.Argument(help="Campaign file (YAML or TOML).")]) -> None:
    """Check a campaign file and print what it would do."""
    from interphase.campaign.config import load_campaign_config
    from interphase.campaign.report import describe_config

    try:
        config = load_campaign_config(path)
    except PATH_ERRORS as error:
        fail(error)
    for line in describe_config(config):
        console.print(line, highlight=False)


@app.command("run")
def run(
    path: Annotated[Path, typer.Argument(help="Campaign file (YAML or TOML).")],
    name: Annotated[str | None, typer.Option(help="Campaign name (default: the file's).")] = None,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="Most iterations (overrides stopping.max_iterations).")
    ] = None,
    workers: WorkersOption = None,
) -> None:
    """Start a new campaign from a file and run it until a stopping rule fires."""
    from interphase.campaign.config import load_campaign_config
    from interphase.campaign.run import register_campaign

    started = time.perf_counter()
    try:
        if workers is not None:
            check_workers(workers)
        config = load_campaign_config(path, name=name)
        if iterations is not None:
            stopping = config.stopping.model_copy(update={"max_iterations": iterations})
            config = config.model_copy(update={"stopping": stopping})
        open_database()
        from interphase.db.session import database_url
        from interphase.execution import check_reachable

        check_reachable(config.executor, database_url())  # before anything is stored
        register_campaign(None, config)
    except (*_campaign_errors(), *PATH_ERRORS) as error:
        fail(error)
    console.print(f"campaign {config.name!r} registered; running")
    try:
        outcome = _run_flow(config.name, None, workers)
    except _campaign_errors() as error:
        fail(error)
    _report(config.name, outcome, started)


@app.command("register")
def register(
    path: Annotated[Path, typer.Argument(help="Campaign file (YAML or TOML).")],
    name: Annotated[str | None, typer.Option(help="Campaign name (default: the file's).")] = None,
) -> None:
    """Record a campaign from a file without running it (then `resume` or `schedule` it)."""
    from interphase.campaign.config import load_campaign_config
    from interphase.campaign.run import register_campaign

    try:
        config = load_campaign_config(path, name=name)
        open_database()
        from interphase.db.session import database_url
        from interphase.execution import check_reachable

        check_reachable(config.executor, database_url())  # before anything is stored
        register_campaign(None, config)
    except (*_campaign_errors(), *PATH_ERRORS) as error:
        fail(error)
    console.print(
        f"campaign {config.name!r} registered; run it with `interphase campaign resume "
        f"{config.name}` or `interphase campaign schedule {config.name} --interval 1h`"
    )


@app.command("resume")
def resume(
    name: NameArgument, iterations: IterationsOption = None, workers: WorkersOption = None
) -> None:
    """Continue a campaign at its first unfinished step (after a crash, Ctrl-C or stop)."""
    started = time.perf_counter()
    try:
        if workers is not None:
            check_workers(workers)
        open_database(create=False)
        outcome = _run_flow(name, iterations, workers)
    except _campaign_errors() as error:
        fail(error)
    _report(name, outcome, started)


@app.command("list")
def list_campaigns() -> None:
    """Every campaign with its state, iterations and last activity."""
    from interphase.campaign.report import campaign_list
    from interphase.db.session import transaction

    try:
        open_database(create=False)
        with transaction(read_only=True) as session:
            rows = campaign_list(session)
    except USER_ERRORS as error:
        fail(error)
    table = Table(
        Column("name", overflow="fold"),  # never cut: `campaign show` needs all of it
        "state", "iterations", "stopped because", "last activity (UTC)", "held by",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            row["name"], row["state"], str(row["iterations"]), row["stop_reason"] or "",
            f"{row['updated_at']:%Y-%m-%d %H:%M:%S}", row["holder"] or "",
        )  # fmt: skip
    console.print(table)


@app.command("show")
def show(name: NameArgument) -> None:
    """One row per iteration, then the story of the campaign and why it stopped."""
    from interphase.campaign.records import find_campaign
    from interphase.campaign.report import campaign_rows, campaign_story, iteration_table
    from interphase.db.session import transaction

    try:
        open_database(create=False)
        with transaction(read_only=True) as session:
            campaign = find_campaign(session, name)
            rows = campaign_rows(session, campaign)
            lines = campaign_story(session, name)
    except _campaign_errors() as error:
        fail(error)
    table = iteration_table(name, rows)
    table.title = None  # the name goes on a line of its own, where it is never wrapped
    console.print(f"campaign {name}", style="bold", highlight=False)
    console.print(table)
    for line in lines:
        console.print(line, highlight=False)


@app.command("stop")
def stop(name: NameArgument) -> None:
    """Ask the running campaign to stop once its current step has finished."""
    from interphase.campaign.run import request_stop

    try:
        open_database(create=False)
        state = request_stop(None, name)
    except _campaign_errors() as error:
        fail(error)
    if state == "running":
        console.print(f"campaign {name!r} stops after its current step")
    else:
        console.print(f"campaign {name!r} is not running ({state}); nothing to stop")


@app.command("delete")
def delete(
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
) -> None:
    """Delete a campaign's own records; every structure and reference label stays."""
    import sys

    from interphase.campaign.delete import delete_campaign

    try:
        open_database(create=False)
        planned = delete_campaign(None, name, dry_run=True)
        for line in planned.lines():
            console.print(line, markup=False, highlight=False)
        if not yes:
            if not sys.stdin.isatty():
                raise ValueError("not deleted: confirm on a terminal, or pass --yes")
            if not typer.confirm(f"delete campaign {name!r}?", default=False):
                console.print("not deleted", markup=False)
                raise typer.Exit(1)
        delete_campaign(None, name)
    except _campaign_errors() as error:
        fail(error)
    console.print(f"deleted campaign {name!r}", markup=False, highlight=False)


@app.command("export")
def export(
    name: NameArgument,
    fmt: Annotated[str, typer.Option("--format", help="paper-json or extxyz.")] = "paper-json",
    output: Annotated[
        Path | None, typer.Option(help="Output file (default: NAME.json/.extxyz).")
    ] = None,
) -> None:
    """Write the campaign's labeled structures as a dataset file."""
    from interphase.campaign.records import find_campaign
    from interphase.db.session import transaction
    from interphase.io.export import export_dataset

    try:
        if fmt not in ("paper-json", "extxyz"):
            raise ValueError(f"--format must be paper-json or extxyz; got {fmt!r}")
        open_database(create=False)
        with transaction(read_only=True) as session:
            campaign_id = find_campaign(session, name).id
        target = output or Path(f"{name}.{'json' if fmt == 'paper-json' else 'extxyz'}")
        report = export_dataset(target, fmt, campaign_id=campaign_id)
    except _campaign_errors() as error:
        fail(error)
    console.print(f"wrote {report.n_written} labeled structures of {name!r} to {target}")
    if report.left_out:
        err_console.print(f"left out {len(report.left_out)} (not writable in {fmt})")
