"""``interphase status``: the database in use, and counts by campaign, level and job state."""

from __future__ import annotations

from rich.table import Table

from interphase.cli.common import USER_ERRORS, console, fail, open_database


def status() -> None:
    """The database in use; counts by campaign, level of theory and job state."""
    from interphase.db.session import database_url, redacted_url
    from interphase.settings import get_settings
    from interphase.status import collect_status

    try:
        open_database(create=False)
        tables = collect_status()
    except USER_ERRORS as error:
        fail(error)
    console.print(
        f"database {redacted_url(database_url())} ({get_settings().database_origin()})",
        soft_wrap=True,
        highlight=False,
    )
    for title, header, rows in tables:
        table = Table(*header, title=title)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)
