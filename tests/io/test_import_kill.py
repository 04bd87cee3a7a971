"""`kill -9` of `interphase data import`: its reader processes die with it, nothing is stored.

The readers are forked by the importing process and set ``PR_SET_PDEATHSIG``.
To be sure they are alive when the importer dies, the importer is first
stopped (SIGSTOP): the readers then block on their full queues, and without
the death signal they would stay blocked forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from interphase.db.models import Structure
from interphase.db.session import transaction
from interphase.io.importer import BATCH_SIZE, _reader_count, import_dataset
from tests.db.cli_process import cli_env

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from make_paper_dataset import generate_paper_dataset

N_ENTRIES = 3 * BATCH_SIZE
DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "big.json"
    generate_paper_dataset(path, N_ENTRIES, seed=5, workers=1)
    return path


def process_identity(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process; None once it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    state, parent, start = fields[0], int(fields[1]), int(fields[19])
    return None if state in ("Z", "X") else (parent, state, start)


def children(pid: int) -> dict[int, int]:
    """Live child pids of ``pid`` with their start times."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            identity = process_identity(int(entry.name))
            if identity is not None and identity[0] == pid:
                found[int(entry.name)] = identity[2]
    return found


def wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def n_structures(url: str) -> int:
    with transaction(url, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(Structure)) or 0)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_readers_die_with_a_killed_import(db_url: str, big_file: Path, tmp_path: Path) -> None:
    n_readers = _reader_count(str(big_file), None)
    importer = subprocess.Popen(
        [sys.executable, "-m", "interphase.cli", "data", "import", str(big_file)],
        env=cli_env(db_url, tmp_path / "data"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(children(importer.pid)) == n_readers, f"{n_readers} readers")
        os.kill(importer.pid, signal.SIGSTOP)
        readers = children(importer.pid)
        assert len(readers) == n_readers
        os.kill(importer.pid, signal.SIGKILL)
        importer.wait(timeout=DEADLINE_S)
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()

    def readers_gone() -> bool:
        return all(
            (identity := process_identity(pid)) is None or identity[2] != start
            for pid, start in readers.items()
        )

    wait_for(readers_gone, f"readers {sorted(readers)} to end")
    assert n_structures(db_url) == 0  # the killed import's transaction never committed
    assert import_dataset(big_file, url=db_url).n_new_structures == N_ENTRIES  # not locked
