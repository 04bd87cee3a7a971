"""``interphase db``: the provenance database."""

from __future__ import annotations

import typer

from interphase.cli.common import USER_ERRORS, console, fail

app = typer.Typer(help="Provenance database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Create the database schema or migrate it to the newest version."""
    from interphase.db.session import database_url, redacted_url
    from interphase.db.session import upgrade as run_upgrade

    try:
        run_upgrade()
    except USER_ERRORS as error:
        fail(error)
    console.print(f"database at {redacted_url(database_url())} is up to date")
