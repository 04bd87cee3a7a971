"""Retry a worker's short transactions through transient database errors.

A worker that meets "database is locked" (SQLite, another writer holding the
lock past the busy timeout), a dropped PostgreSQL connection, a serialization
failure or a deadlock waits and tries the whole transaction again, logging
each retry, instead of dying with its job still marked running. Any other
database error (a bug, a constraint) is raised at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

logger = logging.getLogger("interphase.labeling")

T = TypeVar("T")

#: SQLSTATE codes of PostgreSQL errors worth retrying: serialization failure, deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 10.0


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database error that the same transaction may survive later."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    text = str(original).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    if getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    # psycopg raises OperationalError for lost connections and server shutdowns.
    return isinstance(error, OperationalError) and type(original).__module__.startswith("psycopg")


def with_retries(action: Callable[[], T], *, what: str, give_up_after_s: float) -> T:
    """``action()``, retried with exponential backoff while it fails transiently.

    Parameters
    ----------
    action
        One whole transaction (it rolled back when it raised).
    what
        What the action does, for the log ("claim a job").
    give_up_after_s
        After this long the last transient error is raised.
    """
    deadline = time.monotonic() + give_up_after_s
    delay = FIRST_DELAY_S
    retries = 0
    while True:
        try:
            return action()
        except DBAPIError as error:
            if not is_transient(error) or time.monotonic() + delay > deadline:
                raise
            retries += 1
            reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
            logger.warning(
                "%s: transient database error (%s); retry %d in %.1f s",
                what,
                reason or type(error.orig).__name__,
                retries,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
