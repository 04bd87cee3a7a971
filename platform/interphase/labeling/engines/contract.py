"""The contract every labeling engine follows.

An engine builds input for one structure, executes the calculation and parses
the output into a :class:`~interphase.records.LabelRecord`. It declares what it
can compute (:class:`Capabilities`) and whether it is installed
(:meth:`LabelingEngine.available`). Failures raise :class:`EngineError`
subclasses whose ``error_class`` is what the job table records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import ValidationError

from interphase.labeling.engines.settings import EngineSettings, first_problem
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
    """What to compute: method, basis and engine settings.

    ``log_path`` is a file the engine appends its program's output to (the
    isolated runner passes its own log, whose tail every attempt keeps, even
    when the calculation is killed); None lets the engine use a scratch file.
    """

    method: str
    basis: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    log_path: str | None = None


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


class OutOfMemory(EngineError):
    """The calculation ran out of memory (allocation failed, or killed under a memory limit)."""

    error_class = "OutOfMemory"


#: Every engine error class by the name the job table records.
ERROR_CLASSES: dict[str, type[EngineError]] = {
    cls.error_class: cls
    for cls in (
        SCFNotConverged,
        EngineTimeout,
        EngineCrashed,
        InvalidInput,
        EngineUnavailable,
        OutOfMemory,
    )
}


class LabelingEngine(ABC):
    """Base class of the engine harnesses (one module per engine)."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: Whether the job queue runs each calculation in its own process (time and
    #: memory limits; a crash takes down only that job). True for the DFT engines.
    isolate: ClassVar[bool] = False
    #: Settings that help a stubborn SCF, applied one step per automatic retry
    #: (see :mod:`interphase.labeling.queue.retry`); keys are the engine's own settings.
    scf_rescue_steps: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: The engine's settings (pydantic, ``extra="forbid"``, units in the names).
    settings_model: ClassVar[type[EngineSettings]] = EngineSettings

    def parse_settings(self, settings: Mapping[str, Any]) -> Any:
        """``settings`` as an instance of :attr:`settings_model`.

        Raises
        ------
        InvalidInput
            Naming the first unknown key or bad value and what is allowed.
        """
        try:
            return self.settings_model.model_validate(dict(settings))
        except ValidationError as error:
            raise InvalidInput(
                first_problem(self.settings_model, settings, error, self.name)
            ) from None

    def preload(self) -> None:
        """Import the program's modules (the isolated runner calls this before it caps memory).

        The default imports nothing: engines that drive an external program have
        nothing to load into the Python process.
        """
        return None

    def fit_memory(self, calculation: Calculation, available_mb: float) -> Calculation:
        """``calculation`` with the engine's own memory setting fitted to ``available_mb``.

        ``available_mb`` is what the memory limit leaves once the engine is
        loaded. Engines without a memory setting return ``calculation`` as is.
        """
        return calculation

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
