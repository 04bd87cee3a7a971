"""A read-only SQLite database opens for reading; every write command refuses it in one line.

Three real cases, each in a child process that obeys file modes (root's
permission overrides dropped, see :mod:`tests.db.cli_process`):

* the file is mode 0444 (directory writable): ``mode=ro``; SQLite may create
  the ``-wal``/``-shm`` files it needs beside it;
* the directory is mode 0555 and no ``-wal``/``-shm`` exist: SQLite cannot
  create them, so the file is opened ``immutable``;
* file 0444 and directory 0555 while a writer (this test) holds the database
  open with changes still in its ``-wal``: ``mode=ro`` reads through the
  existing ``-wal``/``-shm`` and sees those changes (``immutable`` would not).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import exc, select

from interphase.db.models import LevelOfTheory
from interphase.db.session import make_engine, transaction, upgrade
from interphase.io.importer import import_dataset
from tests.db.cli_process import can_obey_file_modes, one_line_error, run_cli
from tests.test_cli import paper_entries


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A migrated SQLite database with three imported entries, alone in its directory."""
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "interphase.sqlite"
    url = f"sqlite:///{path}"
    upgrade(url)
    source = tmp_path / "entries.json"
    source.write_text(json.dumps(paper_entries()))
    import_dataset(source, url=url)
    make_engine(url, read_only=True).dispose()
    make_engine(url).dispose()  # the last (read-write) connection to close removes -wal/-shm
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    try:
        yield url, path
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)


def check_reading_works_and_writing_is_refused(
    url: str, path: Path, tmp_path: Path, reason: str
) -> str:
    """status and export work; import and upgrade fail in one line; the file is unchanged."""
    data_dir = tmp_path / "data"
    before = digest(path)
    status = run_cli("status", url=url, data_dir=data_dir, unprivileged=True)
    assert status.returncode == 0, status.stderr
    out = tmp_path / "export.json"
    export = run_cli(
        "data", "export", "--format", "paper-json", str(out),
        url=url, data_dir=data_dir, unprivileged=True,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert json.loads(out.read_text()) == paper_entries()
    source = tmp_path / "more.json"
    source.write_text(json.dumps({"1": paper_entries()["11"] | {"charge": -1, "multiplicity": 1}}))
    for command in (("data", "import", str(source)), ("db", "upgrade")):
        result = run_cli(*command, url=url, data_dir=data_dir, unprivileged=True)
        line = one_line_error(result)
        assert "is read-only" in line and reason in line and "writable" in line, line
    assert digest(path) == before
    return " ".join(status.stdout.split())


@pytest.fixture(autouse=True)
def _obeys_file_modes() -> None:
    why = can_obey_file_modes()
    if why is not None:
        pytest.skip(why)


@pytest.mark.slow
def test_file_mode_0444(database: tuple[str, Path], tmp_path: Path) -> None:
    url, path = database
    path.chmod(0o444)
    status = check_reading_works_and_writing_is_refused(url, path, tmp_path, "its file")
    assert "wB97X-D3BJ_def2-TZVPD │ 2" in status


@pytest.mark.slow
def test_read_only_directory_without_wal_files(database: tuple[str, Path], tmp_path: Path) -> None:
    url, path = database
    before = sorted(p.name for p in path.parent.iterdir())
    path.parent.chmod(0o555)
    check_reading_works_and_writing_is_refused(url, path, tmp_path, "its directory")
    assert sorted(p.name for p in path.parent.iterdir()) == before  # no -wal/-shm made


@pytest.mark.slow
def test_read_only_directory_while_a_writer_has_changes_in_its_wal(
    database: tuple[str, Path], tmp_path: Path
) -> None:
    url, path = database
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(
            "INSERT INTO level_of_theory (name, periodic, settings, reference_energies_hartree)"
            " VALUES ('only-in-the-wal', 0, '{}', '{}')"
        )
        assert Path(f"{path}-wal").stat().st_size > 0
        path.chmod(0o444)
        path.parent.chmod(0o555)
        status = check_reading_works_and_writing_is_refused(url, path, tmp_path, "its file")
        assert "only-in-the-wal" in status  # read through the -wal, not as immutable
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
        writer.close()


def test_read_only_transactions_refuse_writes(db_url: str) -> None:
    """On both backends a read-only transaction reads, and a write inside it fails."""
    with transaction(db_url, read_only=True) as session:
        assert session.scalars(select(LevelOfTheory)).all() == []
    with pytest.raises(exc.DBAPIError), transaction(db_url, read_only=True) as session:
        session.add(LevelOfTheory(name="not-stored"))
        session.flush()
    with transaction(db_url, read_only=True) as session:
        assert session.scalars(select(LevelOfTheory)).all() == []
