"""Engine registry: one harness per program."""

from __future__ import annotations

from interphase.labeling.engine import LabelingEngine
from interphase.labeling.engines.tblite import TBLiteEngine

ENGINES: dict[str, type[LabelingEngine]] = {TBLiteEngine.name: TBLiteEngine}


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
