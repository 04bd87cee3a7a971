"""The contract every labeling engine follows.

An engine builds input for one structure, executes the calculation and parses
the output into a :class:`~interphase.records.LabelRecord`. It declares what it
can compute (:class:`Capabilities`) and whether it is installed
(:meth:`LabelingEngine.available`). Failures raise :class:`EngineError`
subclasses whose ``error_class`` is what the job table records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from interphase.records import LabelRecord, StructureRecord


@dataclass(frozen=True)
class Capabilities:
    """What an engine can compute."""

    periodic: bool = False
    gradients: bool = True
    charges: bool = False
    dipole: bool = False
    gpu: bool = False


@dataclass(frozen=True)
class Availability:
    """Whether an engine can run here, and if not, why and what to install."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Calculation:
    """What to compute: method, basis and engine settings."""

    method: str
    basis: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


class EngineError(RuntimeError):
    """A calculation failed; ``error_class`` names the failure for the job table."""

    error_class: ClassVar[str] = "EngineError"

    def __init__(self, message: str, *, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail


class SCFNotConverged(EngineError):
    error_class = "SCFNotConverged"


class EngineTimeout(EngineError):
    error_class = "Timeout"


class EngineCrashed(EngineError):
    error_class = "EngineCrashed"


class InvalidInput(EngineError):
    error_class = "InvalidInput"


class EngineUnavailable(EngineError):
    error_class = "EngineUnavailable"


class LabelingEngine(ABC):
    """Base class of the engine harnesses (one module per engine)."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: Whether the job queue runs each calculation in its own process (time and
    #: memory limits; a crash takes down only that job). True for the DFT engines.
    isolate: ClassVar[bool] = False
    #: Settings that help a stubborn SCF, applied one step per automatic retry
    #: (see :mod:`interphase.labeling.retry`); keys are the engine's own settings.
    scf_rescue_steps: ClassVar[tuple[dict[str, Any], ...]] = ()

    @abstractmethod
    def available(self) -> Availability:
        """Whether the engine is installed and usable here."""

    @abstractmethod
    def version(self) -> str:
        """Version string of the underlying program."""

    @abstractmethod
    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        """Run one single point; the label's level is filled in by the caller.

        Raises
        ------
        EngineError
            A subclass naming the failure (see the module docstring).
        """

    def check(self, structure: StructureRecord) -> None:
        """Refuse what this engine cannot do, before anything runs."""
        if not (availability := self.available()).ok:
            raise EngineUnavailable(f"engine {self.name!r} is not available: {availability.reason}")
        if structure.is_periodic and not self.capabilities.periodic:
            raise InvalidInput(f"engine {self.name!r} cannot label periodic structures")
