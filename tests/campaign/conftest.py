"""Campaigns as users run them: the real CLI in a real process, a real Prefect server.

One local Prefect server serves the whole test session (starting one per
campaign process would cost seconds each); every campaign process gets it
through ``PREFECT_API_URL``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.yaml")


@pytest.fixture(scope="session")
def prefect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from interphase_flows.runtime import configure_local_prefect, local_prefect_server

    home = tmp_path_factory.mktemp("prefect-server")
    configure_local_prefect(home)
    with local_prefect_server(home) as url:
        yield url


@dataclass
class CampaignEnv:
    """A database, a data directory and a Prefect server for campaign processes."""

    url: str
    data_dir: Path
    prefect_url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            INTERPHASE_DATABASE_URL=self.url,
            INTERPHASE_DATA_DIR=str(self.data_dir),
            PREFECT_API_URL=self.prefect_url,
            PREFECT_HOME=str(self.data_dir / "prefect"),
            PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT / "flows")]),
            COLUMNS="200",
            OMP_NUM_THREADS="1",
        )
        env.update(extra)
        return env

    def cli(
        self, *args: str, timeout: float = 600, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "interphase.cli", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "interphase.cli", *args],
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )


@pytest.fixture
def campaign_env(
    db_url: str, tmp_path: Path, prefect_url: str, monkeypatch: pytest.MonkeyPatch
) -> CampaignEnv:
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", db_url)
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(tmp_path / "data"))
    return CampaignEnv(db_url, tmp_path / "data", prefect_url)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment or command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if marker.encode() in environ or marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL a process started with :meth:`CampaignEnv.start` (only that process)."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def describe_processes(pids: list[int]) -> str:
    """``pid (parent pid): command line`` of each pid, for a failure message."""
    lines = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]
        except OSError:
            continue
        lines.append(f"{pid} (parent {ppid}): {cmdline[:300]}")
    return "; ".join(lines) or "none"


def no_leftovers(marker: str, timeout: float = 30) -> None:
    """Every process of a killed campaign is gone (workers, engine children, servers)."""
    try:
        wait_for(lambda: not processes_with(marker), timeout, f"processes of {marker} to exit")
    except AssertionError as error:
        left = describe_processes(processes_with(marker))
        raise AssertionError(f"{error}; still running: {left}") from None
