"""One database session per request: reading, writing, and rehearsing a write.

A read is the project's read-only transaction
(``transaction(url, read_only=True)``: no write lock on SQLite, ``SET
TRANSACTION READ ONLY`` on PostgreSQL), so a page view never waits for a
writer and cannot write. Writes and rehearsals use the sessions of
:func:`interphase.db.session.session_factory`. A route opens its session itself
(``with reading(request) as session``) so the session lives in the thread that
uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from interphase.db.session import transaction


@dataclass(frozen=True)
class DashboardState:
    """What every request needs: the session factory and the write token."""

    sessions: sessionmaker[Session]
    token: str
    database: str  # the URL with any password hidden, for the page footer
    url: str  # the URL itself, for library calls that open their own transaction


def state_of(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


@contextmanager
def reading(request: Request) -> Iterator[Session]:
    """A read-only session (its transaction ends with the block; a write inside fails)."""
    with transaction(state_of(request).url, read_only=True) as session:
        yield session


@contextmanager
def writing(request: Request) -> Iterator[Session]:
    """A session whose work commits as one unit, or rolls back entirely on error."""
    session = state_of(request).sessions()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


@contextmanager
def rehearsing(request: Request) -> Iterator[Session]:
    """A session whose work is always rolled back: what a write would do, not done."""
    session = state_of(request).sessions()
    try:
        session.begin()
        yield session
    finally:
        session.rollback()
        session.close()
