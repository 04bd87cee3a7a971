"""Fixtures of the dashboard tests: an app over the test database, and its token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from interphase.dashboard.app import create_app
from interphase.dashboard.security import TOKEN_HEADER

TOKEN = "test-token-0123456789abcdef"
WRITE_HEADERS = {TOKEN_HEADER: TOKEN}


@pytest.fixture
def client(local_env: str) -> Iterator[TestClient]:
    """The dashboard over the test database (SQLite and PostgreSQL), token :data:`TOKEN`."""
    with TestClient(create_app(local_env, token=TOKEN)) as test_client:
        yield test_client
