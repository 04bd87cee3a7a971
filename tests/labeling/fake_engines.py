"""Stand-ins for failures a real engine cannot be made to produce on demand.

``HoldingEngine`` runs real GFN2-xTB but first waits while a file exists, so a
test can kill its worker mid-job. ``MemoryHogEngine`` allocates far more than
its memory limit. Both must be importable by worker and child processes, hence
a module of their own; :func:`register` adds them to the engine registry.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from interphase.labeling.engine import Calculation, LabelingEngine
from interphase.labeling.engines import ENGINES
from interphase.labeling.engines.tblite import TBLiteEngine
from interphase.records import LabelRecord, StructureRecord


class HoldingEngine(TBLiteEngine):
    """GFN2-xTB that waits (up to 60 s) while ``settings['hold_file']`` exists."""

    name = "holding"

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        settings = dict(calculation.settings)
        hold = Path(settings.pop("hold_file", "/nonexistent"))
        deadline = time.monotonic() + 60
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return super().compute(structure, Calculation("GFN2-xTB", None, settings))


class MemoryHogEngine(TBLiteEngine):
    """Allocates ``settings['allocate_mb']`` before a GFN2-xTB single point."""

    name = "memoryhog"
    isolate = True

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        settings = dict(calculation.settings)
        block = np.ones(int(settings.pop("allocate_mb", 0)) * 131072)  # 8-byte floats
        del block
        return super().compute(structure, Calculation("GFN2-xTB", None, settings))


def register() -> None:
    """Make the fakes resolvable by name in this process."""
    engines: list[type[LabelingEngine]] = [HoldingEngine, MemoryHogEngine]
    for engine in engines:
        ENGINES[engine.name] = engine
