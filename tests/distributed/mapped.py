"""Top-level functions the executors' ``map`` runs in other processes (importable there)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def square_late_first(item: tuple[int, int]) -> tuple[int, int]:
    """``(x*x, pid)`` after sleeping longer for earlier items, so they finish last."""
    x, n = item
    time.sleep(0.1 * (n - x))
    return x * x, os.getpid()


def note_pid_and_wait(folder: str) -> int:
    """Write this process's pid into ``folder`` and sleep (the parent gets killed meanwhile)."""
    Path(folder, str(os.getpid())).touch()
    time.sleep(120.0)
    return os.getpid()
