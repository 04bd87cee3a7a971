"""Engines, transactional sessions and schema migrations.

Every import or flow step runs inside one :func:`transaction`: it commits as a
whole or, on any error, rolls back and leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from interphase.settings import get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseNotInitialisedError(RuntimeError):
    """The database has no interphase schema yet."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling is off (see make_engine); BEGIN IMMEDIATE
    # takes the write lock up front so two writers queue instead of deadlocking.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@cache
def make_engine(url: str) -> Engine:
    """One engine per URL (cached). SQLite parents get created; pragmas set."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", _disable_pysqlite_transactions)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _disable_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def database_url(url: str | None = None) -> str:
    """The URL given, or the one from settings."""
    return url or get_settings().resolved_database_url


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=make_engine(database_url(url)), expire_on_commit=False)


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session whose work commits as one unit, or rolls back entirely on error."""
    session = session_factory(url)()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create or migrate the schema to ``revision`` (Alembic)."""
    from alembic import command

    url = database_url(url)
    make_engine(url)  # creates the SQLite parent directory
    command.upgrade(_alembic_config(url), revision)


def require_schema(url: str | None = None) -> None:
    """Raise :class:`DatabaseNotInitialisedError` when the schema is missing."""
    url = database_url(url)
    if not inspect(make_engine(url)).has_table("structure"):
        raise DatabaseNotInitialisedError(
            f"database {redacted_url(url)} has no interphase schema: run `interphase db upgrade`"
        )


def redacted_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
