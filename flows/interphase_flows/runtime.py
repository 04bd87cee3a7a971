"""Prefect for a local installation: quiet defaults and a server that dies with its owner.

Prefect reads its settings when it is first imported, so
:func:`configure_local_prefect` runs before any ``import prefect``. Without a
configured ``PREFECT_API_URL``, :func:`prefect_api` starts a Prefect server
(SQLite under the data directory, 127.0.0.1, a free port) as a child process
that the kernel kills when its owner dies — Prefect's own temporary server
outlives a ``kill -9`` of the process that started it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from interphase.processes import die_with_parent_preexec

QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


class PrefectServerError(RuntimeError):
    """The local Prefect server did not start."""


def configure_local_prefect(data_dir: Path) -> None:
    """Set Prefect's environment defaults (explicit user settings win)."""
    os.environ.setdefault("PREFECT_HOME", str((data_dir / "prefect").resolve()))
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_prefect_server(
    data_dir: Path, *, port: int | None = None, timeout_s: float = 120.0
) -> Iterator[str]:
    """Run a Prefect server for the block; yields its API URL (``http://127.0.0.1:PORT/api``)."""
    port = port or free_port()
    home = (data_dir / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn",
            "--factory", "interphase_flows.prefect_server:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
        ],
        env=env,
        stdout=log,
        stderr=log,
        preexec_fn=die_with_parent_preexec,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise PrefectServerError(
                    f"the Prefect server exited with status {process.returncode}; "
                    f"see {home / 'server.log'}"
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise PrefectServerError(
                    f"the Prefect server did not answer on {url} in {timeout_s:.0f} s"
                )
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def prefect_api(data_dir: Path) -> Iterator[str]:
    """The configured Prefect API, or a local server for the block (see module docstring)."""
    configure_local_prefect(data_dir)
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    with local_prefect_server(data_dir) as url:
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)
