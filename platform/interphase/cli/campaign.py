"""``interphase status`` and ``interphase demo``: campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from interphase.cli.common import USER_ERRORS, console, fail, open_database


def status() -> None:
    """Counts by campaign, level of theory and job state."""
    from interphase.status import collect_status

    try:
        open_database()
        tables = collect_status()
    except USER_ERRORS as error:
        fail(error)
    for title, header, rows in tables:
        table = Table(*header, title=title)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)


def demo(
    config: Annotated[
        Path | None, typer.Option(help="Campaign configuration (JSON), e.g. examples/demo.json.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (when no --config is given).")] = 0,
) -> None:
    """Run one small real campaign end to end (walking skeleton) and print its report."""
    from flows.demo import run_demo

    try:
        run_demo(config_path=config, seed=seed, console=console)
    except USER_ERRORS as error:
        fail(error)
