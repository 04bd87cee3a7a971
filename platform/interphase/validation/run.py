"""Validate one head of a model: its properties against its reference level's, the reference cached.

:func:`validate_head` checks the request (suite, head, elements, level) before
anything is computed, takes the reference level's results from
``reference_property`` or computes them once through the engine that labels at
that level (:class:`~interphase.labeling.ase_calculator.EngineCalculator`),
computes the same properties with the head, and records the checks in
``validation_run``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from interphase.db.models import LevelOfTheory, ModelArtifact, ReferenceProperty, ValidationRun
from interphase.db.session import transaction
from interphase.validation.checks import Check, Tolerance
from interphase.validation.suites import (
    Suite,
    SuiteError,
    compare,
    compute,
    suite_elements,
    suite_named,
    suite_settings,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ValidationOutcome:
    """What one suite said about one head."""

    run_id: int
    suite: str
    head: str
    level: str
    checks: list[Check]
    passed: bool
    reference_cached: bool  # taken from the database, not computed now
    reference_seconds: float  # what the reference cost when it was computed
    model_seconds: float
    model_values: dict[str, Any]
    reference_values: dict[str, Any]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "head": self.head,
            "level": self.level,
            "passed": self.passed,
            "checks": [check.to_dict() for check in self.checks],
            "reference_cached": self.reference_cached,
            "reference_seconds": self.reference_seconds,
            "model_seconds": self.model_seconds,
            "settings": self.settings,
            "model_values": self.model_values,
            "reference_values": self.reference_values,
        }


def reference_key(level: LevelOfTheory, suite: str, settings: Mapping[str, Any]) -> str:
    """SHA-256 of what fixes a reference result: the level's recipe, the suite and its settings."""
    identity = {
        "level": level.name,
        "engine": level.engine,
        "method": level.method,
        "basis": level.basis,
        "level_settings": level.settings or {},
        "suite": suite,
        "suite_settings": dict(settings),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Request:
    model: Any  # the MultiHeadPotential, loaded once for every calculator of the suite
    suite: Suite
    settings: dict[str, Any]
    head: str
    level_id: int
    level_name: str
    key: str


def _check_request(
    url: str | None,
    model_path: Path,
    head: str,
    suite_name: str,
    against: str | None,
    settings: Mapping[str, Any],
) -> _Request:
    from interphase.models.artifact import load_model

    suite = suite_named(suite_name)
    full_settings = suite_settings(suite, settings)
    if not model_path.is_file():
        raise SuiteError(f"model file {model_path} does not exist")
    model = load_model(model_path, "cpu")
    if head not in model.heads:
        raise SuiteError(
            f"model {model_path.name} has no head {head!r}; its heads: {', '.join(model.heads)}"
        )
    species = {chemical_symbols[int(z)] for z in model.species}
    missing = sorted(set(suite_elements(suite, full_settings)) - species)
    if missing:
        raise SuiteError(
            f"the {suite.name} suite needs {', '.join(missing)}, which model "
            f"{model_path.name} has not learned (its elements: {', '.join(sorted(species))})"
        )
    level_name = against or head
    with transaction(url, read_only=True) as session:
        level = session.scalar(select(LevelOfTheory).where(LevelOfTheory.name == level_name))
        if level is None or level.engine is None or level.method is None:
            raise SuiteError(
                f"no level {level_name!r} with an engine and method in the database: "
                "name the reference with --against LEVEL (see `interphase status`)"
            )
        if level.periodic != suite.periodic:
            kind = "a periodic" if suite.periodic else "a molecular"
            raise SuiteError(
                f"the {suite.name} suite needs {kind} level; {level_name!r} is "
                f"{'periodic' if level.periodic else 'molecular'}"
            )
        return _Request(
            model,
            suite,
            full_settings,
            head,
            level.id,
            level.name,
            reference_key(level, suite.name, full_settings),
        )


def _engine_calculators(url: str | None, level_id: int) -> tuple[Callable[[int], Calculator], str]:
    """A calculator per total charge at the level, through its labeling engine, and its version."""
    from interphase.labeling.ase_calculator import EngineCalculator
    from interphase.labeling.engines import get_engine
    from interphase.labeling.engines.contract import Calculation

    with transaction(url, read_only=True) as session:
        level = session.get_one(LevelOfTheory, level_id)
        engine = get_engine(str(level.engine))
        calculation = Calculation(str(level.method), level.basis, dict(level.settings or {}))

    def calculator_for(charge: int) -> Calculator:
        # The suites' molecules and ions are closed shell (EC, DMC, Li⁺, Li⁺–EC).
        return EngineCalculator(engine, calculation, charge=charge, multiplicity=1)

    return calculator_for, engine.version()


def reference_values(
    url: str | None,
    request: _Request,
    progress: Progress,
    compute_with: Callable[[Callable[[int], Calculator]], dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], float, bool]:
    """The reference level's values: from the database, else computed now and stored.

    ``compute_with`` computes them from the level's calculators (default: the
    suite's properties with its settings).
    """
    with transaction(url, read_only=True) as session:
        stored = session.scalar(
            select(ReferenceProperty).where(ReferenceProperty.key == request.key)
        )
        if stored is not None:
            progress(
                f"reference {request.level_name}: from the database ({stored.seconds:.0f} s once)"
            )
            return dict(stored.values), float(stored.seconds), True
    progress(f"reference {request.level_name}: computing the {request.suite.name} suite")
    calculator_for, engine_version = _engine_calculators(url, request.level_id)
    started = time.perf_counter()
    if compute_with is None:
        values = compute(request.suite, request.settings, calculator_for)
    else:
        values = compute_with(calculator_for)
    seconds = time.perf_counter() - started
    try:
        with transaction(url) as session:
            session.add(
                ReferenceProperty(
                    level_id=request.level_id,
                    suite=request.suite.name,
                    key=request.key,
                    settings=request.settings,
                    values=values,
                    seconds=seconds,
                    engine_version=engine_version,
                )
            )
    except IntegrityError:
        pass  # another validation stored the same reference meanwhile: same key, same values
    return values, seconds, False


def _head_values(request: _Request, say: Progress) -> tuple[dict[str, Any], float]:
    """The suite's values with the head (seconds it took); raises ValueError when it fails."""
    from interphase.models.calculator import InterphaseCalculator

    say(f"model head {request.head}: computing the {request.suite.name} suite")
    started = time.perf_counter()
    values = compute(
        request.suite,
        request.settings,
        lambda charge: InterphaseCalculator(
            request.model, request.head, device="cpu", total_charge=charge
        ),
    )
    return values, time.perf_counter() - started


def _interface_reference(
    url: str | None,
    request: _Request,
    model_sha256: str,
    model_values: dict[str, Any],
    say: Progress,
) -> tuple[_Request, dict[str, Any], float, bool]:
    """Reference forces on the head's MD frames, cached per model file and settings.

    The cached entry keeps its frames. Where this run's frames differ from them
    (the trajectory depends on the last bits of the arithmetic), the head's forces
    are recomputed on the cached frames, so both sides are always judged on the
    same structures.
    """
    from interphase.models.calculator import InterphaseCalculator
    from interphase.validation.interface import frame_atoms, frame_forces, reference_forces

    with transaction(url, read_only=True) as session:
        level = session.get_one(LevelOfTheory, request.level_id)
        key = reference_key(
            level, request.suite.name, {**request.settings, "model_sha256": model_sha256}
        )
    keyed = replace(request, key=key)
    values, seconds, cached = reference_values(
        url, keyed, say, lambda calculator_for: reference_forces(model_values, calculator_for(0))
    )
    if values["frames"] != model_values["frames"]:
        head = InterphaseCalculator(request.model, request.head, device="cpu")
        model_values["frames"] = values["frames"]
        model_values["model_forces_ev_per_angstrom"] = [
            frame_forces(frame, head) for frame in frame_atoms(values)
        ]
    return keyed, values, seconds, cached


def validate_head(
    model_path: str | Path,
    head: str,
    suite_name: str,
    *,
    against: str | None = None,
    settings: Mapping[str, Any] | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    campaign_id: int | None = None,
    iteration_index: int | None = None,
    url: str | None = None,
    progress: Progress | None = None,
) -> ValidationOutcome:
    """Run one suite on one head and record it (see the module docstring).

    Raises
    ------
    SuiteError
        Unknown suite or setting, a head the model lacks, elements it has not
        learned, or a reference level missing or of the wrong kind: before any
        calculation and with nothing written.
    """
    say = progress or (lambda _message: None)
    path = Path(model_path)
    request = _check_request(url, path, head, suite_name, against, settings or {})
    interface = request.suite.name == "interface"
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    if not interface:  # the reference first: its cache is independent of the head
        reference, reference_seconds, cached = reference_values(url, request, say)
    started = time.perf_counter()
    try:
        model_values, model_seconds = _head_values(request, say)
        if interface:  # the reference is judged on the head's own trajectory
            request, reference, reference_seconds, cached = _interface_reference(
                url, request, sha256, model_values, say
            )
        checks = compare(request.suite, model_values, reference, tolerances)
    except ValueError as error:  # e.g. no E(V) minimum: the head's crystal is not stable
        say(f"model head {head}: the {request.suite.name} suite failed: {error}")
        model_values = {"error": str(error)}
        model_seconds = time.perf_counter() - started
        if interface:
            reference, reference_seconds, cached = {}, 0.0, False
        nan = math.nan
        checks = [Check(f"{request.suite.name} suite", "", nan, nan, nan, "", False, str(error))]
    passed = all(check.passed for check in checks)
    with transaction(url) as session:
        artifact = session.scalar(
            select(ModelArtifact.id).where(ModelArtifact.sha256 == sha256).limit(1)
        )
        reference_id = session.scalar(
            select(ReferenceProperty.id).where(ReferenceProperty.key == request.key)
        )
        run = ValidationRun(
            model_artifact_id=artifact,
            model_sha256=sha256,
            model_path=str(path.resolve()),
            head=head,
            suite=request.suite.name,
            level_id=request.level_id,
            reference_id=reference_id,
            campaign_id=campaign_id,
            iteration_index=iteration_index,
            checks=[check.to_dict() for check in checks],
            model_values=model_values,
            passed=passed,
            seconds=model_seconds,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    return ValidationOutcome(
        run_id,
        request.suite.name,
        head,
        request.level_name,
        checks,
        passed,
        cached,
        reference_seconds,
        model_seconds,
        model_values,
        reference,
        request.settings,
    )
