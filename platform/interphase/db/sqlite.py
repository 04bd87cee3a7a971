"""SQLite engines: read-only files, busy timeouts and one-line errors.

Read-only files. A WAL database needs its ``-wal`` and ``-shm`` files even to
be read: SQLite (>= 3.22) opens a read-only WAL database when those files
exist or can be created, otherwise only as ``immutable``. So a database whose
file or directory is not writable is read through ``mode=ro`` connections
(never setting WAL), with ``immutable=1`` added when the directory is
read-only and no ``-wal`` file exists (then nobody can be writing it and
nothing un-checkpointed can be missed). A write transaction on such a
database raises :class:`DatabaseReadOnlyError` before it connects
(:func:`interphase.db.session.transaction`).

Busy timeout. A write transaction (``BEGIN IMMEDIATE``) waits for another
writer's lock for 30 s, or ``?timeout=SECONDS`` given in the URL; past that
it raises :class:`DatabaseLockedError`. Read-only engines use a deferred
``BEGIN`` and ``PRAGMA query_only``: in WAL mode a reader never waits.

Full disk. A write that finds no room (``SQLITE_FULL``), or an I/O error while
the file system has almost no room left (opening a WAL database creates its
``-shm`` index, which fails as ``SQLITE_IOERR_SHMSIZE``), raises
:class:`DatabaseDiskFullError`, one line naming the database. SQLite keeps the
database intact: the transaction that failed is not stored.
"""

from __future__ import annotations

import enum
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError

#: How long a SQLite transaction waits for another's write lock, unless the URL says.
DEFAULT_SQLITE_BUSY_TIMEOUT_S = 30.0


class DatabaseReadOnlyError(RuntimeError):
    """A command that writes was given a SQLite database it cannot write."""


#: An I/O error with less than this free (bytes) beside the database is a full disk.
NEARLY_FULL_BYTES = 1024 * 1024


class DatabaseDiskFullError(DatabaseReadOnlyError):
    """The disk of a SQLite database is full: it cannot take this command's writes.

    A :class:`DatabaseReadOnlyError` (it cannot be written, and commands report
    both the same way), whose message is one line starting ``disk full at PATH``.
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class DatabaseLockedError(OperationalError):
    """SQLite's write lock stayed taken by another connection past the busy timeout.

    A subclass of SQLAlchemy's :class:`~sqlalchemy.exc.OperationalError`, so code
    that retries on that error keeps working; its message is one line.
    """

    def __init__(self, message: str, context: ExceptionContext) -> None:
        super().__init__(context.statement, context.parameters, context.original_exception)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SqliteAccess(enum.Enum):
    """How a SQLite database file can be opened by this process."""

    read_write = "read_write"
    #: ``mode=ro``: the file or its directory is not writable; -wal/-shm usable.
    read_only = "read_only"
    #: ``mode=ro&immutable=1``: read-only directory and no -wal/-shm to read through.
    immutable = "immutable"


def sqlite_access(path: str | Path) -> SqliteAccess:
    """How ``path`` can be opened: read-write, read-only, or only as immutable.

    A file that does not exist yet counts as read-write (it will be created).
    """
    path = Path(path)
    if not path.exists():
        return SqliteAccess.read_write
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    directory_writable = os.access(path.parent, os.W_OK)
    side_files_writable = all(f.exists() and os.access(f, os.W_OK) for f in (wal, shm))
    if os.access(path, os.W_OK) and (directory_writable or side_files_writable):
        return SqliteAccess.read_write
    if directory_writable or wal.exists():
        return SqliteAccess.read_only  # (a -wal without -shm in a read-only directory fails)
    return SqliteAccess.immutable


def read_only_reason(url: str) -> str | None:
    """Why the SQLite database at ``url`` cannot be written, or None when it can."""
    path = sqlite_path(url)
    if path is None or sqlite_access(path) is SqliteAccess.read_write:
        return None
    if not os.access(path, os.W_OK):
        return "its file is not writable"
    return "its directory is not writable"


def _busy_timeout_s(url: str) -> float:
    value = make_url(url).query.get("timeout")
    try:
        return float(value) if isinstance(value, str) else DEFAULT_SQLITE_BUSY_TIMEOUT_S
    except ValueError:
        raise ValueError(
            f"timeout={value!r} in the SQLite URL must be a number of seconds"
        ) from None


def _sqlite_pragmas(timeout_s: float, *, read_only: bool) -> Any:
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite's own transactions off: see begin
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return set_pragmas


def _sqlite_begin_immediate(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front so two writers queue instead of deadlocking.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    # A reader takes no lock up front: in WAL mode it never waits for a writer.
    conn.exec_driver_sql("BEGIN")


def _sqlite_errors(url: str, timeout_s: float) -> Any:
    """``handle_error`` hook: a lock timeout or a read-only file as one-line errors."""

    def translate(context: ExceptionContext) -> None:
        original = context.original_exception
        if not isinstance(original, sqlite3.Error):
            return
        name = getattr(original, "sqlite_errorname", "")
        if name.startswith("SQLITE_BUSY"):
            raise DatabaseLockedError(
                f"database {url} is locked: another process has held its write "
                f"lock for longer than the busy timeout ({timeout_s:g} s). Wait for that "
                "process (an import, a worker, a migration) to finish or stop it, then retry; "
                "or allow a longer wait with ?timeout=SECONDS in the database URL",
                context,
            ) from original
        reason = read_only_reason(url) if name.startswith("SQLITE_READONLY") else None
        if reason is not None:
            raise read_only_error(url, reason) from original
        path = sqlite_path(url)
        if path is not None and _disk_full(path, name):
            raise disk_full_error(path, name) from original

    return translate


def _free_bytes(path: str) -> int | None:
    try:
        return shutil.disk_usage(Path(path).parent).free
    except OSError:
        return None


def _disk_full(path: str, error_name: str) -> bool:
    """Whether a SQLite error of this name on the database at ``path`` means its disk is full."""
    if error_name.startswith("SQLITE_FULL"):
        return True
    free = _free_bytes(path) if error_name.startswith("SQLITE_IOERR") else None
    return free is not None and free < NEARLY_FULL_BYTES


def return_wal_space(url: str) -> bool:
    """Checkpoint a SQLite database's WAL into its file and truncate the WAL; whether it did.

    On a full disk this returns the WAL's space, so that a small write (a
    worker putting its job back) can fit again: the checkpoint itself needs
    room only where the database file grows. False for other databases, or
    when the checkpoint could not complete (another connection reading, or no
    room even for that).
    """
    path = sqlite_path(url)
    if path is None:
        return False
    try:
        connection = sqlite3.connect(path, timeout=_busy_timeout_s(url))
        try:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return busy == 0


def disk_full_error(path: str, error_name: str = "SQLITE_FULL") -> DatabaseDiskFullError:
    """The one-line error for a database whose disk has no room left."""
    free = _free_bytes(path)
    room = "" if free is None else f" ({free / 1024:,.0f} KB free)"
    return DatabaseDiskFullError(
        f"disk full at {path}{room}: SQLite could not open or write the database "
        f"({error_name}), which stays as it was before this transaction. Free some space "
        "there, or point INTERPHASE_DATA_DIR (or INTERPHASE_DATABASE_URL) at a disk with "
        "room, and retry",
        path,
    )


def read_only_error(url: str, reason: str) -> DatabaseReadOnlyError:
    """The one-line error for a write to a read-only database (``reason`` from above)."""
    return DatabaseReadOnlyError(
        f"database {url} is read-only ({reason}): this command writes to it. "
        "Commands that only read (status, data export) work; to write, make the file and its "
        "directory writable, or point INTERPHASE_DATABASE_URL at a writable copy"
    )


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return path if path and path != ":memory:" else None


def sqlite_engine(url: str, *, read_only: bool) -> Engine:
    """A new engine for a SQLite URL (cache it): pragmas, begin mode and error translation."""
    timeout_s = _busy_timeout_s(url)
    path = sqlite_path(url)
    if read_only and path is not None:
        engine = create_engine(url, creator=lambda: _connect_read_only(path, timeout_s))
    else:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeout_s})
    event.listen(engine, "connect", _sqlite_pragmas(timeout_s, read_only=read_only))
    begin = _sqlite_begin_deferred if read_only else _sqlite_begin_immediate
    event.listen(engine, "begin", begin)
    event.listen(engine, "handle_error", _sqlite_errors(url, timeout_s))
    return engine


def _connect_read_only(path: str, timeout_s: float) -> sqlite3.Connection:
    flags = "mode=ro"
    if sqlite_access(path) is SqliteAccess.immutable:
        flags += "&immutable=1"
    uri = f"file:{quote(str(Path(path).resolve()))}?{flags}"
    return sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
