"""``interphase status``: counts by campaign, level of theory and job state."""

from __future__ import annotations

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
