"""Fault injection for the kill, stop and signal tests (inert unless the variables are set).

``INTERPHASE_TEST_HOLD_AT=ITERATION:STEP`` and ``INTERPHASE_TEST_HOLD_FILE=PATH``:
when that step first reports progress with some work done, the process writes
PATH (its pid) and waits in the middle of the step while PATH exists, so a
test can SIGKILL it, signal it, or stop it there; deleting PATH lets it go on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from interphase.campaign.records import StepName

_held: set[str] = set()


def hold_here(iteration: int, step: StepName, done: int) -> None:
    """Wait while the marker file exists, once, if this step is the configured hold point."""
    where = os.environ.get("INTERPHASE_TEST_HOLD_AT")
    marker = os.environ.get("INTERPHASE_TEST_HOLD_FILE")
    here = f"{iteration}:{step.value}"
    if not where or not marker or done < 1 or where != here or here in _held:
        return
    _held.add(here)
    path = Path(marker)
    path.write_text(str(os.getpid()))
    while path.exists():
        time.sleep(0.1)
