"""Engines, transactional sessions and schema migrations.

Every import or flow step runs inside one :func:`transaction`: it commits as a
whole or, on any error, rolls back and leaves the database as it was. A
command that only reads uses ``transaction(url, read_only=True)``: a deferred
``BEGIN`` on SQLite (no write lock, so it never waits for a writer), ``SET
TRANSACTION READ ONLY`` on PostgreSQL.

Before a command touches a database, :func:`require_schema` checks its schema
revision. The embedded default (SQLite under ``INTERPHASE_DATA_DIR``, used when
``INTERPHASE_DATABASE_URL`` is unset) is created or migrated on first use; a
database the user configured must be migrated explicitly with ``interphase db
upgrade``, and one at a revision this code does not know (written by a newer
interphase) is refused before anything is written to it.

Who owns the transaction: library functions take an open ``Session`` and
add their work to it (``store_structures``, ``create_jobs``, ``load_subsets``,
``store_fits``, ``score_candidates``, ``queue_uncertainty_jobs``,
``augment_subsets``, ``load_snapshot``); the CLI command or the campaign step
that calls them opens one transaction and commits it together with the
step's completion record. Only the functions whose work must be committed in
several transactions while it runs take a URL and open their own: the job
queue (each claim, heartbeat and result is its own commit, visible to other
workers at once), ``train_from_database`` (epochs are recorded as they finish),
the campaign loop and its lock, and the orchestrating ``fit_subset_gps`` of
``interphase gpr fit``.

SQLite specifics (read-only files, the busy timeout) live in
:mod:`interphase.db.sqlite`.
"""

from __future__ import annotations

import enum
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from interphase.db.sqlite import (
    DatabaseLockedError,
    DatabaseReadOnlyError,
    read_only_error,
    read_only_reason,
    sqlite_engine,
    sqlite_path,
)
from interphase.settings import get_settings

__all__ = [
    "DatabaseLockedError",
    "DatabaseNotInitialisedError",
    "DatabaseReadOnlyError",
    "SchemaSetup",
    "SchemaVersionError",
    "current_revision",
    "database_url",
    "head_revision",
    "known_revisions",
    "make_engine",
    "redacted_url",
    "require_schema",
    "session_factory",
    "transaction",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseNotInitialisedError(RuntimeError):
    """The database has no interphase schema yet, or an older one."""


class SchemaVersionError(RuntimeError):
    """The database's schema revision is unknown to this code (a newer interphase wrote it).

    Also raised when ``alembic_version`` records more than one revision.
    """


class SchemaSetup(enum.StrEnum):
    """What :func:`require_schema` found or did."""

    current = "current"
    created = "created"
    migrated = "migrated"


def make_engine(url: str, read_only: bool = False) -> Engine:
    """One engine per URL and kind (cached). SQLite parents get created; pragmas set.

    ``read_only`` engines differ only on SQLite: ``mode=ro`` connections (see the
    module docstring), ``PRAGMA query_only`` and deferred transactions. A
    PostgreSQL read-only transaction uses the ordinary engine.
    """
    return _cached_engine(url, bool(read_only))


@cache
def _cached_engine(url: str, read_only: bool) -> Engine:
    if read_only and (not url.startswith("sqlite") or sqlite_path(url) is None):
        return make_engine(url)  # PostgreSQL, or SQLite in memory: the ordinary engine
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    return sqlite_engine(url, read_only=read_only)


def database_url(url: str | None = None) -> str:
    """The URL given, or the one from settings."""
    return url or get_settings().resolved_database_url


def session_factory(url: str | None = None, *, read_only: bool = False) -> sessionmaker[Session]:
    return sessionmaker(
        bind=make_engine(database_url(url), read_only=read_only), expire_on_commit=False
    )


@contextmanager
def transaction(url: str | None = None, *, read_only: bool = False) -> Iterator[Session]:
    """A session whose work commits as one unit, or rolls back entirely on error.

    Parameters
    ----------
    url
        Database URL; default from settings.
    read_only
        Only read: a deferred ``BEGIN`` on a ``mode=ro`` connection (SQLite, also
        for a file or directory that is not writable) or ``SET TRANSACTION READ
        ONLY`` (PostgreSQL). A write inside fails.

    Raises
    ------
    DatabaseReadOnlyError
        A write transaction on a SQLite database this process cannot write.
    DatabaseLockedError
        SQLite only: another writer held the lock past the busy timeout.
    """
    url = database_url(url)
    if not read_only:
        reason = read_only_reason(url)
        if reason is not None:
            raise read_only_error(url, reason)
    session = session_factory(url, read_only=read_only)()
    try:
        with session.begin():
            if read_only and session.get_bind().dialect.name == "postgresql":
                session.execute(text("SET TRANSACTION READ ONLY"))
            yield session
    finally:
        session.close()


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


#: Key of the PostgreSQL advisory lock that serialises concurrent schema upgrades.
UPGRADE_LOCK_KEY = 0x696E_7465_7270  # "interp"

#: URLs whose schema this process found current (cleared by :func:`upgrade`).
_CURRENT: set[str] = set()


@contextmanager
def _upgrade_lock(url: str) -> Iterator[None]:
    """Hold a lock that every concurrent upgrade of the same database waits for.

    PostgreSQL: a session advisory lock on a connection of its own. SQLite: an
    exclusive ``flock`` on a file beside the database.
    """
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK_KEY}
                )
                connection.commit()
        return
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with open(f"{path}.upgrade-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create or migrate the schema to ``revision`` (Alembic).

    Concurrent upgrades of one database are serialised: the second finds the
    schema current and does nothing.

    Raises
    ------
    SchemaVersionError
        When the database is at a revision this code does not know, or records several.
    DatabaseReadOnlyError
        A SQLite database whose file or directory is not writable.
    """
    from alembic import command

    url = database_url(url)
    reason = read_only_reason(url)
    if reason is not None:
        raise read_only_error(url, reason)
    make_engine(url)  # creates the SQLite parent directory
    _CURRENT.discard(url)
    with _upgrade_lock(url):
        found = current_revision(url)
        if found is not None and found not in known_revisions():
            raise _newer_schema(url, found)
        command.upgrade(_alembic_config(url), revision)


@cache
def known_revisions() -> tuple[str, ...]:
    """Every schema revision this code can migrate, oldest first; the last is the head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    return tuple(reversed([r.revision for r in script.walk_revisions()]))


def head_revision() -> str:
    """The schema revision this code writes."""
    return known_revisions()[-1]


def current_revision(url: str | None = None) -> str | None:
    """The database's schema revision; None when it has no interphase schema.

    Only reads (a SQLite file that does not exist is not created).

    Raises
    ------
    SchemaVersionError
        ``alembic_version`` holds more than one row. Interphase's migrations are
        one straight line, so its databases record exactly one revision; several
        mean another tool or a hand edit changed it, and nothing can say which
        schema the tables have.
    """
    url = database_url(url)
    path = sqlite_path(url)
    if path is not None and not Path(path).exists():
        return None
    engine = make_engine(url, read_only=True)
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        found = list(versions)
    if len(found) > 1:
        raise SchemaVersionError(
            f"database {redacted_url(url)} records {len(found)} schema revisions in "
            f"alembic_version ({', '.join(repr(r) for r in sorted(found))}); interphase keeps "
            f"exactly one (its newest is {head_revision()}), so this schema is unknown: leave "
            "the one revision the tables are at, or use another database"
        )
    return found[0] if found else None


def is_embedded(url: str) -> bool:
    """Whether ``url`` is the embedded default nobody configured (SQLite in the data dir)."""
    settings = get_settings()
    return settings.database_url is None and url == settings.resolved_database_url


def require_schema(url: str | None = None) -> SchemaSetup:
    """Make sure the database has this code's schema before it is used.

    The embedded default database is created, or migrated, here. A configured
    database (``INTERPHASE_DATABASE_URL`` or an explicit URL) is only checked.

    Returns
    -------
    SchemaSetup
        ``current``, or what was done to the embedded database.

    Raises
    ------
    DatabaseNotInitialisedError
        A configured database without the schema or at an older revision.
    SchemaVersionError
        A database at a revision this code does not know (a newer interphase), or
        with several revisions recorded.
    """
    url = database_url(url)
    if url in _CURRENT:
        return SchemaSetup.current
    found = current_revision(url)
    if found == head_revision():
        _CURRENT.add(url)
        return SchemaSetup.current
    if found is not None and found not in known_revisions():
        raise _newer_schema(url, found)
    if is_embedded(url):
        upgrade(url)
        _CURRENT.add(url)
        return SchemaSetup.created if found is None else SchemaSetup.migrated
    if found is None:
        raise DatabaseNotInitialisedError(
            f"database {redacted_url(url)} has no interphase schema: run `interphase db upgrade`"
        )
    raise DatabaseNotInitialisedError(
        f"database {redacted_url(url)} is at schema revision {found}, older than this "
        f"interphase's {head_revision()}: run `interphase db upgrade`"
    )


def _newer_schema(url: str, found: str) -> SchemaVersionError:
    return SchemaVersionError(
        f"database {redacted_url(url)} is at schema revision {found!r}, which this interphase "
        f"does not know (its newest is {head_revision()}): it was written by a newer "
        "interphase; use that version, or a database of this one"
    )


def redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
