"""A real dashboard server in a subprocess and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: Where to copy screenshots for the README (unset: only the test's tmp_path).
SCREENSHOTS_ENV = "INTERPHASE_SCREENSHOTS_DIR"


def chromium_or_skip() -> str:
    """The Chromium executable; the test skips (saying why) where none is installed."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (`make system-deps` installs it as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class DashboardServer:
    """``interphase dashboard`` running in its own process."""

    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


@contextmanager
def dashboard_server(
    env: dict[str, str],
    unset: tuple[str, ...] = (),
    *,
    host: str = "127.0.0.1",
    prefix: tuple[str, ...] = (),
) -> Iterator[DashboardServer]:
    """Start ``python -m interphase.cli dashboard --host <host> --port <free>``; stop it after.

    ``env`` is added to this process's environment, less the variables in ``unset``;
    ``prefix`` is a command the dashboard runs under (e.g. ``unshare``).
    """
    bare = host.strip("[]")  # --host takes an IPv6 address with or without brackets
    port = free_port(bare)
    environment = {k: v for k, v in {**os.environ, **env}.items() if k not in unset}
    command = [sys.executable, "-m", "interphase.cli", "dashboard", "--host", host]
    process = subprocess.Popen(
        [*prefix, *command, "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = DashboardServer(f"http://{f'[{bare}]' if ':' in bare else bare}:{port}", process)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the dashboard exited: {process.communicate()[0]}")
            try:
                with urllib.request.urlopen(server.url + "/jobs", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the dashboard did not answer within 120 s"
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        server.output.append(out or "")


@dataclass
class PageProblems:
    """Console errors and uncaught exceptions seen by a page."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console {message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))


def screenshot(page: Any, directory: Path, name: str) -> Path:
    """A full-page PNG in ``directory``, copied to $INTERPHASE_SCREENSHOTS_DIR when set."""
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get(SCREENSHOTS_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(extra) / path.name)
    return path


#: Counts htmx swaps of polled parts, so a test can wait for refreshes (not for time).
COUNT_SWAPS = """
() => {
  window.__swaps = 0;
  document.body.addEventListener("htmx:afterSettle", () => { window.__swaps += 1; });
  window.__not_reloaded = true;
}
"""
