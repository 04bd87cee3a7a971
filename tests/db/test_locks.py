"""A SQLite write lock held past the busy timeout: one line naming the database, for any command.

Another connection (this test) holds ``BEGIN IMMEDIATE``; the commands run
with ``?timeout=0.5`` in the URL so they give up after half a second instead
of the default 30 s. Reading commands do not wait at all (WAL readers take
no lock).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Structure
from interphase.db.session import DatabaseLockedError, transaction, upgrade
from tests.db.cli_process import one_line_error
from tests.test_cli import paper_entries

runner = CliRunner()


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """(URL with a 0.5 s busy timeout, database path), its write lock held by another connection."""
    path = tmp_path / "interphase.sqlite"
    upgrade(f"sqlite:///{path}")
    url = f"sqlite:///{path}?timeout=0.5"
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", url)
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(tmp_path / "data"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield url, path
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def n_structures(url: str) -> int:
    with transaction(url, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(Structure)) or 0)


@pytest.mark.parametrize(
    "command",
    [
        ["data", "import", "{dataset}"],
        ["jobs", "create", "--level", "GFN2-xTB"],
        ["generate", "lattice", "--n", "1", "--kind", "cluster", "--packing", "bcc"],
        ["db", "upgrade"],
    ],
    ids=["data-import", "jobs-create", "generate", "db-upgrade"],
)
def test_a_lock_past_the_busy_timeout_is_one_line(
    locked: tuple[str, Path], tmp_path: Path, command: list[str]
) -> None:
    url, path = locked
    dataset = tmp_path / "entries.json"
    dataset.write_text(json.dumps(paper_entries()))
    args = [part.format(dataset=dataset) for part in command]
    line = one_line_error(runner.invoke(app, args, catch_exceptions=False))
    assert f"database sqlite:///{path}?timeout=0.5 is locked" in line, line
    assert "busy timeout (0.5 s)" in line and "retry" in line
    assert n_structures(url) == 0


def test_reading_commands_do_not_wait_for_the_lock(locked: tuple[str, Path]) -> None:
    result = runner.invoke(app, ["status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "structures by campaign" in result.output


def test_the_lock_error_is_still_an_operational_error(locked: tuple[str, Path]) -> None:
    """Code that retries on SQLAlchemy's OperationalError keeps working."""
    url, _ = locked
    with pytest.raises(DatabaseLockedError) as info, transaction(url) as session:
        session.execute(text("SELECT 1"))  # the first statement begins the transaction
    assert isinstance(info.value, OperationalError)
    assert "\n" not in str(info.value)


def test_a_bad_timeout_in_the_url_is_one_line(tmp_path: Path, monkeypatch) -> None:
    upgrade(f"sqlite:///{tmp_path / 'x.sqlite'}")
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite'}?timeout=soon")
    line = one_line_error(runner.invoke(app, ["status"], catch_exceptions=False))
    assert "timeout='soon'" in line and "seconds" in line
