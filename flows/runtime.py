"""Prefect runtime defaults for a local installation.

Prefect reads its settings when it is first imported, so
:func:`configure_local_prefect` must run before any ``import prefect``. It
keeps Prefect's state under interphase's data directory, turns off telemetry
(there is no network to send it to), and keeps Prefect's own logging to
warnings so the command's output is interphase's report.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "PREFECT_UI_ENABLED": "false",
}


def configure_local_prefect(data_dir: Path) -> None:
    """Set Prefect's environment defaults (explicit user settings win)."""
    os.environ.setdefault("PREFECT_HOME", str((data_dir / "prefect").resolve()))
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # The temporary server's shutdown can log cancelled-request tracebacks via uvicorn.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def step(console: Console, title: str) -> Iterator[dict[str, str]]:
    """Show a spinner while a campaign step runs, then one line with its outcome and time."""
    start = time.perf_counter()
    note: dict[str, str] = {"text": ""}
    with console.status(f"{title} …"):
        yield note
    console.print(
        f"[green]✓[/] {title}{': ' + note['text'] if note['text'] else ''} "
        f"[dim]({time.perf_counter() - start:.1f} s)[/]"
    )
