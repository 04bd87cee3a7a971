"""Engine registry: one harness per program."""

from __future__ import annotations

from interphase.labeling.engines.analytic import AnalyticEngine
from interphase.labeling.engines.contract import LabelingEngine
from interphase.labeling.engines.gpaw import GPAWEngine
from interphase.labeling.engines.psi4 import Psi4Engine
from interphase.labeling.engines.pyscf import PySCFEngine
from interphase.labeling.engines.tblite import TBLiteEngine

ENGINES: dict[str, type[LabelingEngine]] = {
    engine.name: engine
    for engine in (TBLiteEngine, Psi4Engine, PySCFEngine, GPAWEngine, AnalyticEngine)
}


class UnknownEngineError(KeyError):
    """No engine of that name is registered."""


def get_engine(name: str) -> LabelingEngine:
    """An instance of the engine called ``name``."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise UnknownEngineError(
            f"unknown engine {name!r}; known engines: {', '.join(sorted(ENGINES))}"
        ) from None
