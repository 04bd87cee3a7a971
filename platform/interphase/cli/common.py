"""Shared pieces of the command-line interface: consoles, errors, progress.

User text (names, file names, messages) is never read as rich markup: both
consoles have markup off, so strings and table cells print as they are; the
few styled lines pass ``markup=True`` with the user text in them escaped
(:func:`print_error`, ``rich.markup.escape``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer is pinned
from typer.core import HAS_RICH, TyperGroup

from interphase.db.session import (
    DatabaseLockedError,
    DatabaseNotInitialisedError,
    DatabaseReadOnlyError,
    SchemaVersionError,
)

#: Width of a console that writes to a file or a pipe: lines and tables are never cut.
UNCUT_WIDTH = 100_000


class OutputConsole(Console):
    """A rich console at the terminal's width, or cutting nothing when not on a terminal.

    Rich lays out for 80 columns when its stream is not a terminal, which cut
    identifiers (``demo-202612…``) and broke words in piped output. ``COLUMNS``
    still sets the width when given.
    """

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS"):
            return ConsoleDimensions(UNCUT_WIDTH, dimensions.height)
        return dimensions

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = OutputConsole(markup=False)
err_console = OutputConsole(stderr=True, markup=False)

#: Errors that are the user's to fix: printed as one line, exit status 2.
#: Commands that open a file the user named also catch :data:`PATH_ERRORS`.
USER_ERRORS: tuple[type[Exception], ...] = (
    DatabaseNotInitialisedError,
    SchemaVersionError,
    DatabaseReadOnlyError,
    DatabaseLockedError,
    FileNotFoundError,
    ValueError,
    KeyError,
)
#: What opening a path the user gave can raise besides FileNotFoundError (a name
#: too long, a directory, no permission).
PATH_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, OSError)


def one_line(text: object) -> str:
    """``text`` on one line (line breaks become spaces)."""
    return " ".join(str(text).splitlines())


def print_error(message: object) -> None:
    """``error: MESSAGE`` on stderr, one line; the message is printed as it is (no markup)."""
    err_console.print(
        f"[bold red]error:[/] {escape(one_line(message))}", markup=True, soft_wrap=True
    )


def fail(error: Exception) -> NoReturn:
    """Print a user error as one line and exit with status 2."""
    message: object = error.args[0] if isinstance(error, KeyError) and error.args else error
    if isinstance(error, UnicodeEncodeError):  # bytes from the command line that are not UTF-8
        message = (
            f"{error.object[:80]!r} is not UTF-8 text; names, levels and other values must be "
            "UTF-8 (file names may be any bytes)"
        )
    elif isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.filename}: {error.strerror}"  # e.g. a file name too long to open
    print_error(message)
    raise typer.Exit(code=2)


class DatabaseNotFoundError(FileNotFoundError):
    """The embedded database does not exist, and the command is not one that creates it."""


def _require_existing_database() -> None:
    """Refuse to go on when the embedded default database does not exist yet.

    Raises
    ------
    DatabaseNotFoundError
        Naming the file looked for, why there, and how to point at another one.
    """
    from interphase.settings import PROJECT_DATA_DIR, get_settings

    settings = get_settings()
    if settings.database_url or settings.embedded_database_path.exists():
        return
    elsewhere = "set INTERPHASE_DATA_DIR=DIR or INTERPHASE_DATABASE_URL=URL"
    if "data_dir" not in settings.model_fields_set:
        elsewhere = f"run in or below the directory holding its {PROJECT_DATA_DIR}, or {elsewhere}"
    raise DatabaseNotFoundError(
        f"no interphase database at {settings.embedded_database_path} "
        f"({settings.database_origin()}); to use another, {elsewhere} (commands that store "
        "data, such as `data import`, create the database)"
    )


def open_database(*, create: bool = True) -> None:
    """Check the configured database's schema; set up the embedded default on first use.

    Says so on stderr when the embedded database was created or migrated. With
    ``create=False`` (commands that only read, or act on records that must
    exist: a job, a campaign) a missing embedded database is not created: it
    is :class:`DatabaseNotFoundError`.
    """
    from interphase.db.session import SchemaSetup, database_url, redacted_url, require_schema

    if not create:
        _require_existing_database()
    done = require_schema()
    if done is not SchemaSetup.current:
        err_console.print(
            f"{done.value} the database {redacted_url(database_url())}",
            style="dim",
            soft_wrap=True,
        )


class OneLineErrorsGroup(TyperGroup):
    """The root command: a usage error (bad option, value or argument) is one line.

    Typer prints usage errors as a usage line, a hint and a boxed message; this
    prints ``error: MESSAGE (see `COMMAND --help`)`` and exits with status 2.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        with_nul = next((a for a in (sys.argv[1:] if args is None else args) if "\0" in a), None)
        if with_nul is not None:  # no name, path or value holds one (nor can a real argv)
            print_error(f"argument {with_nul!r} contains a NUL character; leave it out")
            sys.exit(2)
        try:
            outcome = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except NoArgsIsHelpError as shown:
            if not (HAS_RICH and self.rich_markup_mode is not None):
                shown.show()  # rich printed the help already, while the error was made
            sys.exit(shown.exit_code)
        except ClickException as error:
            context = getattr(error, "ctx", None)
            hint = f" (see `{context.command_path} --help`)" if context is not None else ""
            print_error(f"{error.format_message()}{hint}")
            sys.exit(error.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(outcome if isinstance(outcome, int) else 0)


def progress(unit: str = "entries") -> Progress:
    """A transient progress bar on stderr."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.completed:,}" + f" {unit}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,  # a bar in a log file is noise (and blank lines)
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
