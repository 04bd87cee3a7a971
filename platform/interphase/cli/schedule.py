"""Scheduled campaigns: ``campaign schedule/schedules/unschedule`` and ``interphase serve``.

Schedules are rows of the interphase database. With ``PREFECT_API_URL`` set,
``schedule`` and ``unschedule`` also create, update or delete the campaign's
Prefect deployment for the work pool ``$INTERPHASE_PREFECT_WORK_POOL``
(default ``interphase-local``, docker-compose's), which a Prefect worker runs.
``serve`` runs the schedules itself, on a local Prefect server it starts unless
``PREFECT_API_URL`` is set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interphase.cli.arguments import check_workers
from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

if TYPE_CHECKING:
    from interphase.campaign.schedules import ScheduleSpec
    from interphase_flows.schedule import TickRun

NameArgument = Annotated[str, typer.Argument(help="Campaign name.")]


def _errors() -> tuple[type[Exception], ...]:
    from interphase.campaign.records import CampaignNotFoundError
    from interphase.campaign.schedules import ScheduleNotFoundError

    return (*USER_ERRORS, CampaignNotFoundError, ScheduleNotFoundError)


def _data_dir() -> Path:
    from interphase.settings import get_settings

    return get_settings().data_dir


def _prefect() -> None:
    """Prefect's quiet local defaults; before the first import of a flow module."""
    from interphase_flows.runtime import configure_local_prefect

    configure_local_prefect(_data_dir())


def _spec(
    name: str, cron: str | None, interval: str | None, iterations: int | None, timezone: str
) -> ScheduleSpec:
    """The validated schedule; a pydantic error becomes its first message, on one line."""
    from pydantic import ValidationError

    from interphase.campaign.schedules import ScheduleSpec, parse_duration

    seconds = parse_duration(interval) if interval is not None else None
    try:
        return ScheduleSpec(
            campaign=name,
            cron=cron,
            interval_seconds=seconds,
            timezone=timezone,
            iterations_per_run=iterations,
        )
    except ValidationError as error:
        message = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValueError(message) from None


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}"


def schedule(
    name: NameArgument,
    cron: Annotated[
        str | None, typer.Option(help="Cron expression, e.g. '0 2 * * *' (read in --timezone).")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="Time between runs: 30s, 10m, 2h, 1d or 1h30m.")
    ] = None,
    iterations_per_run: Annotated[
        int | None,
        typer.Option(min=1, help="Each run stops after N iterations (default: until done)."),
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the cron fields.")] = "UTC",
) -> None:
    """Run a campaign by itself on a cron or interval schedule (replaces its schedule)."""
    from interphase.campaign.schedules import set_schedule
    from interphase.db.session import transaction

    try:
        spec = _spec(name, cron, interval, iterations_per_run, timezone)
        open_database(create=False)  # before Prefect, which keeps its home in the data dir
    except _errors() as error:
        fail(error)
    _prefect()
    from interphase_flows.schedule import (
        WorkPoolMissingError,
        api_errors,
        apply_to_work_pool,
        next_runs,
        work_pool_name,
    )

    refusals: tuple[type[Exception], ...] = (*_errors(), WorkPoolMissingError)
    try:
        next_runs(spec, n=1)  # Prefect reads the cron expression
        pool = None
        with transaction() as session:
            stored = set_schedule(session, spec)
            if os.environ.get("PREFECT_API_URL"):  # before the commit: refused → nothing stored
                pool = work_pool_name()
                apply_to_work_pool(stored, pool)
    except refusals as error:
        fail(error)
    except api_errors() as error:
        fail(ValueError(f"the Prefect server at {os.environ['PREFECT_API_URL']} failed: {error}"))
    first = _when(next_runs(stored, 1)[0])
    console.print(f"campaign {name!r} scheduled: {stored.describe()}, next {first}")
    if pool is not None:
        console.print(f"deployment on {os.environ['PREFECT_API_URL']} for work pool {pool!r}")
    else:
        console.print("`interphase serve` runs it (restart a running serve to pick this up)")


@contextmanager
def _tick_api() -> Iterator[str | None]:
    """The Prefect API holding this installation's ticks, if one is up (configured or serve's)."""
    from interphase.campaign.ticks import running_serve_api

    configured = os.environ.get("PREFECT_API_URL")
    url = configured or running_serve_api(_data_dir())
    if url is None or configured:
        yield url
        return
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def schedules(
    ticks: Annotated[int, typer.Option(min=0, help="Recent skipped ticks to show.")] = 5,
) -> None:
    """Every schedule with its next run times, and recent skipped ticks when a server is up."""
    from interphase.campaign.records import find_campaign
    from interphase.campaign.schedules import active_schedules
    from interphase.db.session import transaction

    try:
        open_database(create=False)  # before Prefect, which keeps its home in the data dir
        with transaction(read_only=True) as session:
            specs = active_schedules(session)
            states = {s.campaign: find_campaign(session, s.campaign).state for s in specs}
    except _errors() as error:
        fail(error)
    _prefect()
    from interphase_flows.schedule import api_errors, next_runs, recent_runs

    if not specs:
        console.print("nothing is scheduled (add one with `interphase campaign schedule NAME ...`)")
        return
    table = Table("campaign", "when", "iterations per run", "next runs", "campaign state")
    for spec in specs:
        table.add_row(
            spec.campaign, spec.describe(), str(spec.iterations_per_run or "until done"),
            ", ".join(f"{t:%m-%d %H:%M:%S}" for t in next_runs(spec, 3)), states[spec.campaign],
        )  # fmt: skip
    console.print(table)
    with _tick_api() as url:
        if url is None:
            console.print(
                "no Prefect server is up; ticks show while `interphase serve` runs", style="dim"
            )
            return
        try:
            runs = recent_runs(limit=200)
        except api_errors() as error:
            err_console.print(f"could not read ticks from {url}: {error}", style="dim")
            return
    for spec in specs:
        skipped = [run for run in runs if run.campaign == spec.campaign and run.skipped]
        done = [run for run in runs if run.campaign == spec.campaign and run.state == "COMPLETED"]
        console.print(
            f"{spec.campaign}: {len(done)} completed, {len(skipped)} skipped "
            f"of the last {len(runs)} ticks",
            highlight=False,
        )
        for run in skipped[:ticks]:
            at = _when(run.scheduled_at) if run.scheduled_at else "?"
            console.print(f"  skipped tick {at}: {run.message}", highlight=False)


def unschedule(name: NameArgument) -> None:
    """Stop running a campaign on its schedule (its iterations stay; resume still works)."""
    from interphase.campaign.schedules import remove_schedule
    from interphase.db.session import transaction

    try:
        open_database(create=False)  # before Prefect, which keeps its home in the data dir
    except _errors() as error:
        fail(error)
    _prefect()
    from interphase_flows.schedule import api_errors, delete_deployment

    try:
        with transaction() as session:
            removed = remove_schedule(session, name)
            deleted = bool(os.environ.get("PREFECT_API_URL")) and delete_deployment(name)
    except _errors() as error:
        fail(error)
    except api_errors() as error:
        fail(ValueError(f"the Prefect server at {os.environ['PREFECT_API_URL']} failed: {error}"))
    console.print(f"campaign {name!r} unscheduled (was {removed.describe()})")
    if deleted:
        console.print(f"deleted its deployment on {os.environ['PREFECT_API_URL']}")


def _report_tick(tick: TickRun) -> None:
    now = f"{datetime.now():%H:%M:%S}"
    tick_time = f"{tick.scheduled_at:%H:%M:%S}" if tick.scheduled_at else "?"
    if tick.state == "RUNNING":
        console.print(f"{now} {tick.campaign}: tick of {tick_time} running", highlight=False)
        return
    outcome = "skipped" if tick.skipped else tick.state_name.lower()
    console.print(
        f"{now} {tick.campaign}: tick of {tick_time} {outcome}: {tick.message}",
        highlight=False,
        soft_wrap=True,
    )


def serve(
    workers: Annotated[
        int | None, typer.Option(min=1, help="Labeling workers per run (default: the file's).")
    ] = None,
) -> None:
    """Run the scheduled campaigns until Ctrl-C (a local Prefect server unless PREFECT_API_URL)."""
    from interphase.campaign.schedules import active_schedules
    from interphase.cli.common import interrupt_on_sigterm
    from interphase.db.session import transaction

    try:
        if workers is not None:
            check_workers(workers)
        open_database(create=False)
        with transaction(read_only=True) as session:
            specs = active_schedules(session)
        if not specs:
            raise ValueError(
                "nothing is scheduled: add a schedule first "
                "(`interphase campaign schedule NAME --interval 1h`)"
            )
    except _errors() as error:
        fail(error)
    from interphase_flows.runtime import PrefectServerError, prefect_api

    configured = os.environ.get("PREFECT_API_URL")
    started = time.perf_counter()
    try:
        with interrupt_on_sigterm(), prefect_api(_data_dir()) as api_url:
            from interphase_flows.schedule import next_runs
            from interphase_flows.serve import serve_schedules

            where = "configured" if configured else f"local, SQLite under {_data_dir() / 'prefect'}"
            console.print(f"serving {len(specs)} schedule(s) on Prefect at {api_url} ({where})")
            for spec in specs:
                per_run = spec.iterations_per_run or "all remaining"
                console.print(
                    f"  {spec.campaign}: {spec.describe()}, {per_run} iteration(s) per run, "
                    f"next {_when(next_runs(spec, 1)[0])}",
                    highlight=False,
                )
            console.print("Ctrl-C stops", style="dim")
            serve_schedules(
                specs, data_dir=_data_dir(), api_url=api_url, report=_report_tick, workers=workers
            )
    except KeyboardInterrupt:
        pass
    except PrefectServerError as error:
        fail(ValueError(str(error)))
    console.print(f"stopped serving after {time.perf_counter() - started:.0f} s")
