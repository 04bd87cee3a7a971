"""Fault injection for the kill-and-resume tests (inert unless the variables are set).

``INTERPHASE_TEST_HOLD_AT=ITERATION:STEP`` and ``INTERPHASE_TEST_HOLD_FILE=PATH``:
when that step reports progress with some work done, the process writes PATH
and waits there, so a test can SIGKILL it in the middle of the step.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from interphase.campaign.records import StepName


def hold_here(iteration: int, step: StepName, done: int) -> None:
    """Wait forever (until killed) if this step is the configured hold point."""
    where = os.environ.get("INTERPHASE_TEST_HOLD_AT")
    marker = os.environ.get("INTERPHASE_TEST_HOLD_FILE")
    if not where or not marker or done < 1 or where != f"{iteration}:{step.value}":
        return
    Path(marker).write_text(str(os.getpid()))
    while True:
        time.sleep(1)
