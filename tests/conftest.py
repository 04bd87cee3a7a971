"""Shared fixtures: a fresh, migrated database per test on SQLite and PostgreSQL.

PostgreSQL runs when ``INTERPHASE_TEST_POSTGRES_URL`` (an admin URL) is set;
each test gets its own database cloned from a migrated template.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from interphase.db.session import make_engine, upgrade

POSTGRES_ADMIN_URL = os.environ.get("INTERPHASE_TEST_POSTGRES_URL")
# One template per pytest process, so concurrent runs never drop each other's.
TEMPLATE = f"interphase_test_template_{os.getpid()}"

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_ADMIN_URL, reason="INTERPHASE_TEST_POSTGRES_URL is not set"
            ),
        ],
    ),
]


def _admin_execute(statement: str) -> None:
    assert POSTGRES_ADMIN_URL is not None
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database, made once per test session and dropped after."""
    assert POSTGRES_ADMIN_URL is not None
    _admin_execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    _admin_execute(f"CREATE DATABASE {TEMPLATE}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=TEMPLATE).render_as_string(False)
    upgrade(url)
    make_engine(url).dispose()
    yield TEMPLATE
    _admin_execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty, migrated interphase database (SQLite file or PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'interphase.sqlite'}"
        upgrade(url)
        yield url
        make_engine(url).dispose()
        return
    template = request.getfixturevalue("postgres_template")
    name = f"interphase_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    assert POSTGRES_ADMIN_URL is not None
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    try:
        yield url
    finally:
        make_engine(url).dispose()
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def local_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point INTERPHASE_* settings at the test database and a temporary data dir."""
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", db_url)
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(tmp_path / "data"))
    return db_url
