"""The ``interphase`` command: one module per command group, registered here."""

from __future__ import annotations

import typer

from interphase.cli import (
    calc,
    campaign,
    dashboard,
    data,
    db,
    generate,
    gpr,
    jobs,
    jobs_run,
    schedule,
    status,
    structures,
    train,
    validate,
)
from interphase.cli import md as md_commands
from interphase.cli.common import OneLineErrorsGroup

app = typer.Typer(
    cls=OneLineErrorsGroup,
    help="interphase: active-learning potentials for Li-metal/electrolyte interfaces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(data.app, name="data")
app.add_typer(generate.app, name="generate")
app.add_typer(structures.app, name="structures")
jobs.app.command("run")(jobs_run.run)
app.add_typer(jobs.app, name="jobs")
app.add_typer(gpr.app, name="gpr")
app.add_typer(train.app, name="model")
campaign.app.command("schedule")(schedule.schedule)
campaign.app.command("schedules")(schedule.schedules)
campaign.app.command("unschedule")(schedule.unschedule)
app.add_typer(campaign.app, name="campaign")
app.command()(calc.calc)
app.command()(status.status)
app.command()(md_commands.md)
app.command()(md_commands.phonons)
app.command()(train.train)
app.command()(validate.validate)
app.command()(dashboard.dashboard)
app.command()(schedule.serve)

__all__ = ["app"]
