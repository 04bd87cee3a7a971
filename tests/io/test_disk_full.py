"""A full disk under the data directory: one line naming it, the database intact (issue 20, item 2).

Reproduced on a 2 MB tmpfs as the data directory: ``data import`` of a
6,000-frame extxyz ended in an 80-line traceback, and with 8 KB free even
opening the database was a "disk I/O error" traceback. The disk here is such
a tmpfs (the test mounts it), so the kernel's "no space left" is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.io.disk_full import (
    count,
    fill,
    grow,
    integrity,
    run_cli,
    small_disk,
    write_waters_extxyz,
)


def _one_disk_full_line(stderr: str, database: Path) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: disk full at {database}"), stderr


@pytest.mark.slow
def test_an_import_that_fills_the_disk_is_one_line_and_stores_nothing(tmp_path: Path) -> None:
    small, big = tmp_path / "small.xyz", tmp_path / "big.xyz"
    write_waters_extxyz(small, 20, seed=1)
    write_waters_extxyz(big, 6000, seed=2)
    with small_disk(tmp_path) as data_dir:
        database = data_dir / "interphase.sqlite"
        assert run_cli(data_dir, "data", "import", str(small)).returncode == 0
        imported = run_cli(data_dir, "data", "import", str(big))
        assert imported.returncode == 2, imported.stderr  # was 1, after an 80-line traceback
        _one_disk_full_line(imported.stderr, database)

        grow(data_dir)
        assert integrity(database) == "ok"
        assert count(database, "structure") == 20  # the first import, none of the second
        again = run_cli(data_dir, "data", "import", str(big))  # with room, it goes through
        assert again.returncode == 0, again.stderr
        assert count(database, "structure") == 6020


def test_opening_a_database_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    small = tmp_path / "small.xyz"
    write_waters_extxyz(small, 20, seed=1)
    with small_disk(tmp_path) as data_dir:
        database = data_dir / "interphase.sqlite"
        assert run_cli(data_dir, "data", "import", str(small)).returncode == 0
        fill(data_dir, leave_kb=8)  # too little for the WAL index that opening creates
        for command in (["status"], ["jobs", "list"], ["data", "import", str(small)]):
            opened = run_cli(data_dir, *command)
            assert opened.returncode == 2, opened.stderr  # was 1: a "disk I/O error" traceback
            _one_disk_full_line(opened.stderr, database)

        grow(data_dir)
        assert run_cli(data_dir, "status").returncode == 0
        assert integrity(database) == "ok" and count(database, "structure") == 20
