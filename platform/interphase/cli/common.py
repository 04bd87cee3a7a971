"""Shared pieces of the command-line interface: consoles, errors, progress."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from interphase.db.session import (
    DatabaseLockedError,
    DatabaseNotInitialisedError,
    DatabaseReadOnlyError,
    SchemaVersionError,
)

console = Console()
err_console = Console(stderr=True)

#: Errors that are the user's to fix: printed as one line, exit status 2.
USER_ERRORS: tuple[type[Exception], ...] = (
    DatabaseNotInitialisedError,
    SchemaVersionError,
    DatabaseReadOnlyError,
    DatabaseLockedError,
    FileNotFoundError,
    ValueError,
    KeyError,
)


def fail(error: Exception) -> NoReturn:
    """Print a user error as one line and exit with status 2."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=2)


def open_database() -> None:
    """Check the configured database's schema; set up the embedded default on first use.

    Says so on stderr when the embedded database was created or migrated.
    """
    from interphase.db.session import SchemaSetup, database_url, redacted_url, require_schema

    done = require_schema()
    if done is not SchemaSetup.current:
        err_console.print(f"[dim]{done.value} the database {redacted_url(database_url())}[/]")


def progress(unit: str = "entries") -> Progress:
    """A transient progress bar on stderr."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}" + f" {unit}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``KeyboardInterrupt`` for the block, so clean-up code runs.

    Without it SIGTERM ends the process at once and a half-written temporary
    file stays behind. Only in the main thread (signal handlers live there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
