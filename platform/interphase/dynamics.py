"""Molecular dynamics with any ASE calculator: the one MD driver of the platform.

GFN2-xTB (through :class:`~interphase.labeling.ase_calculator.EngineCalculator`)
drives MD for structure generation, a trained model (through
:class:`~interphase.models.calculator.InterphaseCalculator`) drives exploration
and ``interphase md``; anything with ASE's calculator interface works
(energies in eV, forces in eV/Å).

A run starts from Maxwell-Boltzmann velocities with zero total momentum
(drawn from the seed), integrates Langevin NVT or velocity-Verlet NVE, keeps a
frame every ``snapshot_every`` steps and can write them to an extxyz file. A
:class:`PhysicalityGuard` stops a run whose geometry or energies become
unphysical, which a poorly trained model does early in a campaign: the frames
before that step are kept, since that is where the model is wrong.

Speed is reported the way MD codes do: milliseconds of wall time per step and
simulated nanoseconds per day, measured from the end of the first force call
(which pays for start-up: the first neighbour list, allocator warm-up) to the
last step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.md import MolecularDynamics
from pydantic import BaseModel, ConfigDict, Field

from interphase.records import StructureRecord
from interphase.structures.validate import InvalidStructureError, validate_structure
from interphase.threads import limited_threads

_SECONDS_PER_DAY = 86_400.0


class MDSettingsError(ValueError):
    """An MD setting is out of range or inconsistent (e.g. Langevin at 0 K)."""


class MDSettings(BaseModel):
    """One MD run: length, time step, thermostat, frame interval and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(ge=0, description="Number of MD steps.")
    timestep_fs: float = Field(default=0.5, gt=0, description="Integration time step (fs).")
    temperature_k: float = Field(
        default=300.0,
        ge=0,
        description="Langevin temperature and initial Maxwell-Boltzmann temperature (K); "
        "0 starts NVE from rest.",
    )
    thermostat: Literal["langevin", "nve"] = Field(
        default="langevin", description="Langevin NVT or velocity-Verlet NVE."
    )
    friction_per_fs: float = Field(default=0.01, gt=0, description="Langevin friction (1/fs).")
    snapshot_every: int = Field(
        default=10, ge=1, description="Keep (and write) a frame every this many steps."
    )
    seed: int = Field(default=0, description="Seed of initial velocities and Langevin noise.")


@dataclass
class MDFrame:
    """One kept frame: a copy of the atoms (cell, pbc, momenta kept; no calculator)."""

    atoms: Atoms
    step: int
    time_fs: float
    potential_energy_ev: float
    temperature_k: float


@dataclass(frozen=True)
class MDSpeed:
    """Wall-clock speed of a run (the steps after the first force call)."""

    steps_timed: int
    seconds: float
    first_step_seconds: float
    timestep_fs: float

    @property
    def ms_per_step(self) -> float:
        return 1e3 * self.seconds / self.steps_timed if self.steps_timed else float("nan")

    @property
    def ns_per_day(self) -> float:
        if not self.steps_timed or self.seconds <= 0:
            return float("nan")
        return self.timestep_fs * 1e-6 * self.steps_timed * _SECONDS_PER_DAY / self.seconds


@dataclass
class PhysicalityGuard:
    """Stops a run that reaches unphysical geometry: the structure validator's rules
    (interphase.structures.validate.validate_structure: atoms too close etc.), an
    energy jump between consecutive steps above max_energy_jump_ev_per_atom, or a
    force above max_force_ev_per_angstrom.

    The geometry and force rules are checked every ``check_every`` steps and at
    every step that keeps or writes a frame, so every kept frame has passed; the
    energy jump is between step k - 1 and step k (eV per atom, absolute).
    ``min_distance_fraction`` and ``check_fragments`` are the validator's options
    (fragments only matter for non-periodic structures).
    """

    max_energy_jump_ev_per_atom: float = 1.0
    max_force_ev_per_angstrom: float = 50.0
    check_every: int = 1
    min_distance_fraction: float = 0.5
    check_fragments: bool = False

    def __post_init__(self) -> None:
        if self.check_every < 1:
            raise MDSettingsError(f"guard check_every must be >= 1, got {self.check_every}")
        if self.max_energy_jump_ev_per_atom <= 0 or self.max_force_ev_per_angstrom <= 0:
            raise MDSettingsError(
                "guard limits max_energy_jump_ev_per_atom and max_force_ev_per_angstrom must be > 0"
            )

    def check(
        self, step: int, atoms: Atoms, energy_ev: float, previous_ev: float | None, *, full: bool
    ) -> str | None:
        """The one-line reason to stop at ``step``, or None when it is physical.

        ``full``: check the geometry and forces too (every ``check_every`` steps and
        wherever a frame is kept); the energy jump is checked at every step.
        """
        full = full or step % self.check_every == 0
        reason = self._geometry(step, atoms) if full else None
        reason = reason or self._energy(step, energy_ev, previous_ev, len(atoms))
        return reason or (self._forces(step, atoms) if full else None)

    def _geometry(self, step: int, atoms: Atoms) -> str | None:
        try:
            validate_structure(
                _guard_record(atoms),
                min_distance_fraction=self.min_distance_fraction,
                check_fragments=self.check_fragments,
            )
        except InvalidStructureError as error:
            return f"step {step}: {error} (validator: {error.reason})"
        return None

    def _energy(
        self, step: int, energy_ev: float, previous_ev: float | None, n_atoms: int
    ) -> str | None:
        if not np.isfinite(energy_ev):
            return f"step {step}: potential energy is {energy_ev} eV"
        if previous_ev is None:
            return None
        jump = abs(energy_ev - previous_ev) / n_atoms
        if jump <= self.max_energy_jump_ev_per_atom:
            return None
        return (
            f"step {step}: energy jumped {jump:.3g} eV/atom (from {previous_ev:.6g} to "
            f"{energy_ev:.6g} eV; limit {self.max_energy_jump_ev_per_atom} eV/atom)"
        )

    def _forces(self, step: int, atoms: Atoms) -> str | None:
        norms = np.linalg.norm(np.asarray(atoms.get_forces()), axis=1)
        if not np.isfinite(norms).all():
            bad = np.flatnonzero(~np.isfinite(norms)).tolist()
            return f"step {step}: forces on atoms {bad} are not finite"
        worst = int(np.argmax(norms))
        if norms[worst] <= self.max_force_ev_per_angstrom:
            return None
        return (
            f"step {step}: force on atom {worst} is {norms[worst]:.3g} eV/Å "
            f"(limit {self.max_force_ev_per_angstrom} eV/Å)"
        )


def _guard_record(atoms: Atoms) -> StructureRecord:
    """The geometry of ``atoms`` for the validator; the spin is the lowest the charge allows."""
    charge = int(atoms.info.get("charge", 0))
    multiplicity = 1 + (int(atoms.numbers.sum()) - charge) % 2
    return StructureRecord.from_atoms(atoms, charge=charge, multiplicity=multiplicity)


@dataclass
class MDResult:
    """How a run went: its kept frames, how far it got and why it stopped early, if it did.

    ``steps_done`` counts the steps that completed and passed the guard; the final
    energy (eV) and temperature (K) are those of step ``steps_done`` (None when not
    even step 0 passed). ``frames_written`` counts the frames in the trajectory
    file, which holds step 0 as well as every ``snapshot_every``-th step.
    """

    frames: list[MDFrame] = field(default_factory=list)
    steps_done: int = 0
    speed: MDSpeed = field(default_factory=lambda: MDSpeed(0, 0.0, 0.0, 0.0))
    error: Exception | None = None
    unphysical: str | None = None
    final_potential_energy_ev: float | None = None
    final_temperature_k: float | None = None
    frames_written: int = 0


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    settings: MDSettings,
    *,
    trajectory: str | Path | None = None,
    keep_frames: bool = True,
    on_step: Callable[[int, Atoms], None] | None = None,
    stop_on: tuple[type[Exception], ...] = (),
    guard: PhysicalityGuard | None = None,
) -> MDResult:
    """Run MD of ``atoms`` (moved in place) and keep a frame every ``snapshot_every`` steps.

    Parameters
    ----------
    atoms
        Start structure, molecular or periodic; its velocities are drawn from
        ``settings.temperature_k`` (Maxwell-Boltzmann, zero total momentum; at 0 K
        it starts from rest). ``atoms.info["charge"]`` (default 0) is the charge
        the guard's validator assumes.
    calculator
        Any ASE calculator (eV, eV/Å).
    settings
        Steps, time step, thermostat, frame interval, seed.
    trajectory
        extxyz file of step 0 and every ``snapshot_every``-th step (positions,
        energy, forces), only frames that passed the guard. Overwritten if it exists.
    keep_frames
        Keep the frames in the result (``False`` for long runs that only write).
    on_step
        Called after every step that passed the guard, with the step count and
        the atoms (progress).
    stop_on
        Exception types (e.g. the labeling engine's ``EngineError``) that end the
        run early; the frames so far are kept and the error is in the result.
    guard
        Stops the run at the first unphysical step k; frames before k are kept,
        the frame at k is not, and ``unphysical`` says which rule tripped.

    Raises
    ------
    MDSettingsError
        A Langevin thermostat at 0 K.
    """
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    if settings.thermostat == "langevin" and settings.temperature_k <= 0:
        raise MDSettingsError(
            "a Langevin thermostat needs a temperature above 0 K "
            "(temperature_k, --temperature); use the nve thermostat to start from rest"
        )
    rng = np.random.default_rng(settings.seed)
    atoms.calc = calculator
    if settings.temperature_k > 0:
        thermalize_momenta(atoms, temperature_K=settings.temperature_k, rng=rng)
        Stationary(atoms)
    else:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
    dynamics = _integrator(atoms, settings, rng)
    handle: IO[str] | None = open(trajectory, "w") if trajectory is not None else None  # noqa: SIM115
    try:
        with limited_threads():  # the thread policy (interphase.threads)
            return _integrate(
                atoms, dynamics, settings, handle, keep_frames, on_step, stop_on, guard
            )
    finally:
        if handle is not None:
            handle.close()


def _integrate(
    atoms: Atoms,
    dynamics: MolecularDynamics,
    settings: MDSettings,
    handle: IO[str] | None,
    keep_frames: bool,
    on_step: Callable[[int, Atoms], None] | None,
    stop_on: tuple[type[Exception], ...],
    guard: PhysicalityGuard | None,
) -> MDResult:
    """Step ``dynamics`` until done, a guard trip or a ``stop_on`` error."""
    result = MDResult()
    marks: list[float] = []  # marks[k]: when step k ended; mark 0 follows the first force call
    previous_ev: float | None = None
    start = time.perf_counter()
    try:
        for _ in dynamics.irun(settings.steps):
            step = dynamics.nsteps
            marks.append(time.perf_counter())
            energy_ev = float(atoms.get_potential_energy())
            snapshot = step % settings.snapshot_every == 0
            if guard is not None:
                reason = guard.check(step, atoms, energy_ev, previous_ev, full=snapshot)
                if reason is not None:
                    result.unphysical = reason
                    break
            previous_ev = energy_ev
            temperature_k = float(atoms.get_temperature())
            result.steps_done = step
            result.final_potential_energy_ev = energy_ev
            result.final_temperature_k = temperature_k
            if snapshot and handle is not None:
                _write_frame(handle, atoms)
                result.frames_written += 1
            if snapshot and keep_frames and step > 0:
                result.frames.append(_frame(atoms, step, settings, energy_ev, temperature_k))
            if on_step is not None and step > 0:
                on_step(step, atoms)
    except stop_on as error:
        result.error = error
    result.speed = _speed(start, marks, settings)
    return result


def _frame(
    atoms: Atoms, step: int, settings: MDSettings, energy_ev: float, temperature_k: float
) -> MDFrame:
    copy = atoms.copy()
    copy.calc = None
    return MDFrame(
        atoms=copy,
        step=step,
        time_fs=step * settings.timestep_fs,
        potential_energy_ev=energy_ev,
        temperature_k=temperature_k,
    )


def _integrator(atoms: Atoms, settings: MDSettings, rng: np.random.Generator) -> MolecularDynamics:
    timestep = settings.timestep_fs * units.fs
    if settings.thermostat == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep)
    from ase.md.langevin import Langevin

    return Langevin(
        atoms,
        timestep,
        temperature_K=settings.temperature_k,
        friction=settings.friction_per_fs / units.fs,
        fixcm=False,  # fixcm=True is deprecated in ASE (wrong NVT sampling); Stationary() above
        rng=rng,
    )


def _write_frame(handle: IO[str], atoms: Atoms) -> None:
    from ase.io import write

    write(handle, atoms, format="extxyz")
    handle.flush()


def _speed(start: float, marks: list[float], settings: MDSettings) -> MDSpeed:
    if not marks:
        return MDSpeed(0, 0.0, 0.0, settings.timestep_fs)
    return MDSpeed(
        steps_timed=len(marks) - 1,
        seconds=marks[-1] - marks[0],
        first_step_seconds=marks[0] - start,
        timestep_fs=settings.timestep_fs,
    )
