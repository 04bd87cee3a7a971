"""Schema revisions: the embedded default sets itself up; configured databases are only checked.

Every command opens the database through :func:`interphase.db.session.require_schema`.
A fresh data directory (no ``INTERPHASE_DATABASE_URL``) gets its SQLite schema on
first use; a configured URL without the schema, or at an older revision, gets a
one-line "run `interphase db upgrade`"; a revision this code does not know is
refused before anything is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Structure
from interphase.db.session import current_revision, head_revision, make_engine, transaction, upgrade
from tests.conftest import POSTGRES_ADMIN_URL, _admin_execute
from tests.test_cli import paper_entries

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
FUTURE = "0099_future"


def one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def fresh_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory that does not exist yet, and no configured database URL."""
    monkeypatch.delenv("INTERPHASE_DATABASE_URL", raising=False)
    data_dir = tmp_path / "fresh"
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(data_dir))
    return data_dir


def embedded_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'interphase.sqlite').resolve()}"


def n_structures(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(Structure)) or 0)


@pytest.mark.parametrize(
    "command",
    [
        ["data", "import", "{paper}"],
        ["generate", "lattice", "--packing", "bcc", "--n", "1"],
        ["jobs", "create", "--level", "GFN2-xTB"],
    ],
    ids=["data-import", "generate", "jobs-create"],
)
def test_embedded_database_is_created_on_first_use(
    fresh_data_dir: Path, tmp_path: Path, command: list[str]
) -> None:
    paper = tmp_path / "dataset.json"
    paper.write_text(json.dumps(paper_entries()))
    args = [part.replace("{paper}", str(paper)) for part in command]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    url = embedded_url(fresh_data_dir)
    assert current_revision(url) == head_revision()
    assert "created the database" in one_line(result.stderr)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "created" not in again.stderr  # said once
    if command[0] == "data":
        assert n_structures(url) == 3


def test_embedded_database_at_an_older_revision_is_migrated_and_says_so(
    fresh_data_dir: Path,
) -> None:
    url = embedded_url(fresh_data_dir)
    upgrade(url, "0002")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "migrated the database" in one_line(result.stderr)
    assert current_revision(url) == head_revision()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_configured_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A configured (INTERPHASE_DATABASE_URL) database with no tables at all."""
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(tmp_path / "data"))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'configured.sqlite'}"
        monkeypatch.setenv("INTERPHASE_DATABASE_URL", url)
        yield url
        make_engine(url).dispose()
        return
    if not POSTGRES_ADMIN_URL:
        pytest.skip("INTERPHASE_TEST_POSTGRES_URL is not set")
    name = f"interphase_empty_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name}")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", url)
    try:
        yield url
    finally:
        make_engine(url).dispose()
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("command", [["status"], ["jobs", "list"], ["data", "export", "--format"]])
def test_configured_database_without_schema_gets_one_line(
    empty_configured_url: str, tmp_path: Path, command: list[str]
) -> None:
    args = command + (["extxyz", str(tmp_path / "out.extxyz")] if command[0] == "data" else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "has no interphase schema" in message and "interphase db upgrade" in message
    assert current_revision(empty_configured_url) is None  # nothing was created
    assert not inspect(make_engine(empty_configured_url)).get_table_names()


def test_configured_database_at_an_older_revision_is_not_migrated(
    empty_configured_url: str,
) -> None:
    upgrade(empty_configured_url, "0002")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "older" in one_line(result.output) and "interphase db upgrade" in result.output
    assert current_revision(empty_configured_url) == "0002"
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["status"]).exit_code == 0


def _stamp_future(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    engine.dispose()


@pytest.mark.parametrize("where", ["configured", "embedded"])
def test_newer_revision_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(data_dir))
    if where == "configured":
        url = f"sqlite:///{tmp_path / 'configured.sqlite'}"
        monkeypatch.setenv("INTERPHASE_DATABASE_URL", url)
    else:
        monkeypatch.delenv("INTERPHASE_DATABASE_URL", raising=False)
        url = embedded_url(data_dir)
    upgrade(url)
    _stamp_future(url)
    paper = tmp_path / "dataset.json"
    paper.write_text(json.dumps(paper_entries()))
    for args in (["data", "import", str(paper)], ["generate", "lattice", "--n", "1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert FUTURE in result.output and "newer interphase" in one_line(result.output)
    assert n_structures(url) == 0
    upgraded = runner.invoke(app, ["db", "upgrade"])  # not even an explicit upgrade touches it
    assert upgraded.exit_code == 2 and "Traceback" not in upgraded.output
    assert FUTURE in upgraded.output
    assert current_revision(url) == FUTURE


@pytest.mark.slow
def test_concurrent_upgrades_are_serialised(empty_configured_url: str) -> None:
    env = {**os.environ, "INTERPHASE_DATABASE_URL": empty_configured_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "interphase.cli", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert current_revision(empty_configured_url) == head_revision()
