"""Molecular dynamics with a trained potential: Langevin NVT or NVE, extxyz trajectory, speed.

Speed is reported the way MD codes do: milliseconds of wall time per step and
simulated nanoseconds per day, measured from the end of the first force call
(which pays for start-up: the first neighbour list, allocator warm-up) to the
last step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.md import MolecularDynamics
from pydantic import BaseModel, ConfigDict, Field

_SECONDS_PER_DAY = 86_400.0


class MDSettingsError(ValueError):
    """An MD setting is inconsistent (e.g. a thermostat without a temperature)."""


class MDSettings(BaseModel):
    """One MD run with a trained potential."""

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
    trajectory_interval: int = Field(
        default=10, ge=1, description="Write a trajectory frame every this many steps."
    )
    seed: int = Field(default=0, description="Seed of initial velocities and Langevin noise.")


@dataclass(frozen=True)
class MDSpeed:
    """Wall-clock speed of a run (steps after the first)."""

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


@dataclass(frozen=True)
class MDResult:
    """How the run went: speed, frames written, final energies and temperature."""

    speed: MDSpeed
    frames_written: int
    final_potential_energy_ev: float
    final_temperature_k: float


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    settings: MDSettings,
    *,
    trajectory: str | Path | None = None,
    on_step: Callable[[int, Atoms], None] | None = None,
) -> MDResult:
    """Run MD of ``atoms`` (moved in place) and optionally write an extxyz trajectory.

    Parameters
    ----------
    atoms
        Start structure, molecular or periodic; its velocities are set from
        ``settings.temperature_k`` (Maxwell-Boltzmann, zero total momentum).
    calculator
        Any ASE calculator (eV, eV/Å).
    settings
        Steps, time step, thermostat, trajectory interval, seed.
    trajectory
        extxyz file; frames (positions, energy, forces) at step 0 and every
        ``settings.trajectory_interval`` steps. Overwritten if it exists.
    on_step
        Called after every step with the step count and the atoms (progress).
    """
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    if settings.thermostat == "langevin" and settings.temperature_k <= 0:
        raise MDSettingsError("a Langevin thermostat needs --temperature > 0 K")
    rng = np.random.default_rng(settings.seed)
    atoms.calc = calculator
    if settings.temperature_k > 0:
        thermalize_momenta(atoms, temperature_K=settings.temperature_k, rng=rng)
        Stationary(atoms)
    dynamics = _integrator(atoms, settings, rng)
    handle: IO[str] | None = open(trajectory, "w") if trajectory is not None else None  # noqa: SIM115
    frames = 0
    marks: list[float] = []

    def observe() -> None:
        nonlocal frames
        marks.append(time.perf_counter())
        step = dynamics.nsteps
        if handle is not None and step % settings.trajectory_interval == 0:
            _write_frame(handle, atoms)
            frames += 1
        if on_step is not None and step > 0:
            on_step(step, atoms)

    dynamics.attach(observe, interval=1)
    try:
        start = time.perf_counter()
        dynamics.run(settings.steps)
    finally:
        if handle is not None:
            handle.close()
    return MDResult(
        speed=_speed(start, marks, settings),
        frames_written=frames,
        final_potential_energy_ev=float(atoms.get_potential_energy()),
        final_temperature_k=float(atoms.get_temperature()),
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
    """``marks[k]``: when step k ended; mark 0 follows the first force call (start-up)."""
    if not marks:
        return MDSpeed(0, 0.0, 0.0, settings.timestep_fs)
    return MDSpeed(
        steps_timed=len(marks) - 1,
        seconds=marks[-1] - marks[0],
        first_step_seconds=marks[0] - start,
        timestep_fs=settings.timestep_fs,
    )
