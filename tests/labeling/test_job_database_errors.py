"""A worker survives transient database errors (issue 12, items 6 and 13).

Reproduced: a SQLite lock held longer than the busy timeout killed the worker
with ``OperationalError`` and left its job running. Here a real worker process
(busy timeout lowered to 0.2 s, so a 3 s lock is well past it) waits out the
lock, logs its retries and finishes every job; on PostgreSQL its connections
are terminated under it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from interphase.db.models import JobState
from interphase.labeling.queue.db_retry import is_transient, with_retries
from tests.conftest import BACKENDS, POSTGRES_ADMIN_URL
from tests.labeling import fake_engines
from tests.labeling.job_helpers import (
    WORKER,
    job_state,
    queue_jobs,
    start_worker,
    wait_for,
    waters,
)

#: The usual worker, its SQLite busy timeout lowered from 30 s to 0.2 s.
IMPATIENT_WORKER = (
    """
import sys
from sqlalchemy import event
from interphase.db.session import make_engine
if sys.argv[1].startswith("sqlite"):
    event.listen(
        make_engine(sys.argv[1]),
        "connect",
        lambda connection, _: connection.execute("PRAGMA busy_timeout=200"),
    )
"""
    + WORKER
)


class StderrLines:
    """Collects a process's stderr lines as they come (to wait on what it logs)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def text_now(self) -> str:
        return "".join(self.lines)

    def text(self) -> str:
        self._thread.join(timeout=60)
        return "".join(self.lines)


def _held_then_quick_jobs(url: str, hold: Path) -> list[int]:
    fake_engines.register()
    hold.touch()
    held = queue_jobs(
        url,
        waters(1, seed=8),
        level="held",
        engine="holding",
        method="GFN2-xTB",
        settings={"hold_file": str(hold)},
    )
    return held + queue_jobs(url, waters(5), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")


def test_transient_errors_are_told_apart_from_bugs() -> None:
    locked = OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    assert is_transient(locked)
    assert not is_transient(OperationalError("x", {}, sqlite3.OperationalError("no such table")))
    assert not is_transient(IntegrityError("x", {}, sqlite3.IntegrityError("UNIQUE failed")))
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise locked
        return "done"

    assert with_retries(flaky, what="test", give_up_after_s=60) == "done" and len(calls) == 3
    with pytest.raises(OperationalError):
        with_retries(lambda: (_ for _ in ()).throw(locked), what="test", give_up_after_s=0.1)


@pytest.mark.slow
def test_a_sqlite_lock_held_past_the_busy_timeout_does_not_kill_the_worker(
    tmp_path: Path,
) -> None:
    from interphase.db.session import upgrade

    path = tmp_path / "interphase.sqlite"
    url = f"sqlite:///{path}"
    upgrade(url)
    hold = tmp_path / "hold"
    ids = _held_then_quick_jobs(url, hold)
    worker = start_worker(url, lease_s=10.0, script=IMPATIENT_WORKER)
    stderr = StderrLines(worker)
    wait_for(Path(f"{hold}.started").exists, "the first job to be running")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # no other writer gets in until COMMIT
    try:
        hold.unlink()  # the worker now wants to record its label, and cannot
        # Held until the worker has met the lock (past its 0.2 s busy timeout) twice.
        wait_for(lambda: stderr.text_now().count("database is locked") >= 2, "lock retries")
        assert worker.poll() is None  # still alive, waiting
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert worker.stdout is not None
    out = worker.stdout.read()  # not communicate(): the reader thread owns stderr
    worker.wait(timeout=120)
    err = stderr.text()
    assert worker.returncode == 0, err
    assert "transient database error (database is locked)" in err and "Traceback" not in err
    assert out.splitlines()[-1].split() == ["6", "0", "0"]
    assert all(job_state(url, job_id) == JobState.succeeded for job_id in ids)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", [BACKENDS[1]], indirect=True)  # PostgreSQL only
def test_a_postgresql_outage_does_not_kill_the_worker(db_url: str, tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    ids = _held_then_quick_jobs(db_url, hold)
    worker = start_worker(db_url, lease_s=10.0)
    stderr = StderrLines(worker)
    wait_for(Path(f"{hold}.started").exists, "the first job to be running")
    name = make_url(db_url).database
    assert POSTGRES_ADMIN_URL is not None
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:  # drop the worker's connections, refuse new ones
            connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            hold.unlink()  # the worker now wants to record its label, and cannot
            wait_for(lambda: "transient database error" in stderr.text_now(), "a retry")
            assert worker.poll() is None
            connection.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
    finally:
        admin.dispose()
    assert worker.stdout is not None
    out = worker.stdout.read()  # not communicate(): the reader thread owns stderr
    worker.wait(timeout=120)
    err = stderr.text()
    assert worker.returncode == 0, err
    assert "transient database error" in err and "Traceback" not in err
    assert out.splitlines()[-1].split() == ["6", "0", "0"]
    assert all(job_state(db_url, job_id) == JobState.succeeded for job_id in ids)
