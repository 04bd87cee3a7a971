"""Writing many rows at once: dialect-aware upserts and PostgreSQL's COPY.

Every function takes the caller's open :class:`~sqlalchemy.orm.Session`, so
the caller decides what one transaction covers. interphase runs on SQLite and
PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
from sqlalchemy import JSON, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert_insert(session: Session, table: Table) -> Any:
    """An INSERT of ``table`` that supports ``on_conflict_do_nothing`` (SQLite, PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"interphase supports SQLite and PostgreSQL, not {dialect}")


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows at once: COPY on PostgreSQL (several times faster), executemany elsewhere.

    Rows must hold every column without a server default; arrays pre-encoded as bytes.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    columns = [c for c in table.columns if not c.primary_key]
    defaults = {c.name: _column_default(c) for c in columns}
    names = ", ".join(c.name for c in columns)
    raw = connection.connection.driver_connection
    assert raw is not None  # a live psycopg connection inside the session's transaction
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_copy_value(row.get(c.name, defaults[c.name]), c) for c in columns])


def encode_arrays(row: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
    """``row`` with its array columns (name: dtype) encoded to bytes, in place, for COPY."""
    for name, dtype in dtypes.items():
        if row[name] is not None:
            row[name] = np.ascontiguousarray(row[name], dtype=dtype).tobytes()
    return row


def _column_default(column: Any) -> Any:
    """The Python-side default of a column (called if callable), else None."""
    default = column.default
    if default is None:
        return None
    return default.arg(None) if default.is_callable else default.arg


def _copy_value(value: Any, column: Any) -> Any:
    if isinstance(column.type, JSON) and value is not None:
        return orjson.dumps(value).decode()
    if isinstance(value, np.ndarray):
        return column.type.process_bind_param(value, None)
    return value


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
