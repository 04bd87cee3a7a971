"""Stand-ins for failures a real engine cannot be made to produce on demand.

``HoldingEngine`` runs real GFN2-xTB but first waits while a file exists, so a
test can kill its worker mid-job or hold a calculation past its time limit,
deterministically; ``IsolatedHoldingEngine`` does the same in its own process.
``SlowStartEngine``'s process waits while a file exists before it has even
begun (as a process still starting on a loaded machine does), so a test can
stop it at that moment.
``MemoryHogEngine`` allocates far more than its memory limit. All must be
importable by worker and child processes, hence a module of their own;
:func:`register` adds them to the engine registry.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from pydantic import Field

from interphase.labeling.engines import ENGINES
from interphase.labeling.engines.contract import Calculation, LabelingEngine
from interphase.labeling.engines.tblite import TBLiteEngine, TBLiteSettings
from interphase.records import LabelRecord, StructureRecord

#: Longest a holding engine waits for its hold file to go (s); tests release it sooner.
HOLD_LIMIT_S = 120.0


class HoldingSettings(TBLiteSettings):
    hold_file: str | None = Field(
        default=None, description="Wait while this file exists, then run GFN2-xTB."
    )


class HoldingEngine(TBLiteEngine):
    """GFN2-xTB that waits (up to ``HOLD_LIMIT_S``) while ``settings['hold_file']`` exists.

    Once holding it prints a line (for the log tail) and creates ``<hold_file>.started``.
    """

    name = "holding"
    settings_model = HoldingSettings

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        settings = dict(calculation.settings)
        hold_file = settings.pop("hold_file", None)
        if hold_file is not None:
            hold = Path(hold_file)
            print(f"holding while {hold} exists", flush=True)  # something for the log tail
            Path(f"{hold}.started").touch()  # the test may now kill or time it out
            deadline = time.monotonic() + HOLD_LIMIT_S
            while hold.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().compute(structure, Calculation("GFN2-xTB", None, settings))


class IsolatedHoldingEngine(HoldingEngine):
    """:class:`HoldingEngine` in a process of its own (time limits, kills)."""

    name = "holding-isolated"
    isolate = True


class MemoryHogSettings(TBLiteSettings):
    allocate_mb: int = Field(default=0, ge=0, description="Megabytes to allocate and touch first.")


class MemoryHogEngine(TBLiteEngine):
    """Allocates ``settings['allocate_mb']`` before a GFN2-xTB single point."""

    name = "memoryhog"
    settings_model = MemoryHogSettings
    isolate = True

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        settings = dict(calculation.settings)
        block = np.ones(int(settings.pop("allocate_mb", 0)) * 131072)  # 8-byte floats
        del block
        return super().compute(structure, Calculation("GFN2-xTB", None, settings))


#: Environment variable naming the file while which a ``SlowStartEngine`` process waits.
SLOW_START_FILE = "INTERPHASE_TEST_SLOW_START_FILE"


class SlowStartEngine(TBLiteEngine):
    """GFN2-xTB in a process that waits, before it starts, while ``$SLOW_START_FILE`` exists.

    The wait is in unpickling the engine in the new process, so it comes before
    any of the calculation process's own code (its process group, watchdog and
    log); ``<file>.started`` is created when it begins. Nothing is printed.
    """

    name = "slow-start"
    isolate = True

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _start_slowly, ()


def _start_slowly() -> SlowStartEngine:
    hold_file = os.environ.get(SLOW_START_FILE)
    if hold_file:
        hold = Path(hold_file)
        Path(f"{hold}.started").touch()
        deadline = time.monotonic() + HOLD_LIMIT_S
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return SlowStartEngine()


def register() -> None:
    """Make the fakes resolvable by name in this process."""
    engines: list[type[LabelingEngine]] = [
        HoldingEngine,
        IsolatedHoldingEngine,
        MemoryHogEngine,
        SlowStartEngine,
    ]
    for engine in engines:
        ENGINES[engine.name] = engine
