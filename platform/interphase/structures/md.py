"""Langevin NVT molecular dynamics with any ASE calculator, keeping periodic snapshots.

The calculator is pluggable: GFN2-xTB through
:class:`~interphase.labeling.ase_calculator.EngineCalculator` now, the
trained potential later; anything with ASE's calculator interface works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator


class MDParameterError(ValueError):
    """An MD setting (temperature, timestep, steps, interval) is out of range."""


@dataclass
class MDSnapshot:
    """One MD frame: a copy of the atoms (cell and pbc kept) and where it was taken."""

    atoms: Atoms
    step: int
    time_fs: float
    potential_energy_ev: float
    temperature_k: float


@dataclass
class MDRun:
    """Snapshots of one run and, if it ended early, the error that stopped it."""

    snapshots: list[MDSnapshot] = field(default_factory=list)
    error: Exception | None = None


def langevin_snapshots(
    atoms: Atoms,
    calculator: Calculator,
    *,
    temperature_k: float,
    timestep_fs: float,
    n_steps: int,
    snapshot_every: int,
    friction_per_fs: float = 0.01,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
    stop_on: tuple[type[Exception], ...] = (),
) -> MDRun:
    """Run Langevin NVT from Maxwell-Boltzmann velocities; snapshot every ``snapshot_every`` steps.

    Parameters
    ----------
    atoms
        Start structure; it is moved by the dynamics (pass a copy to keep it).
    calculator
        Any ASE calculator (energy in eV, forces in eV/Å).
    temperature_k
        Thermostat and initial-velocity temperature (K).
    timestep_fs
        Integration time step (fs).
    n_steps
        Number of MD steps.
    snapshot_every
        Interval of kept snapshots (steps); step 0 is not kept.
    friction_per_fs
        Langevin friction coefficient (1/fs).
    seed
        Seed of initial velocities and the thermostat noise.
    on_step
        Called with the number of steps done after each step (progress).
    stop_on
        Exception types (e.g. the engine's SCF failure) that end the run
        early; the snapshots taken so far are returned with the error.

    Raises
    ------
    MDParameterError
        For non-positive temperature, timestep, interval or negative steps.
    """
    if temperature_k <= 0 or timestep_fs <= 0 or friction_per_fs <= 0:
        raise MDParameterError("temperature_k, timestep_fs and friction_per_fs must be > 0")
    if n_steps < 0 or snapshot_every < 1:
        raise MDParameterError(
            f"n_steps must be >= 0 and snapshot_every >= 1, got {n_steps}, {snapshot_every}"
        )
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    rng = np.random.default_rng(seed)
    atoms.calc = calculator
    run = MDRun()
    thermalize_momenta(atoms, temperature_K=temperature_k, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature_k,
        friction=friction_per_fs / units.fs,
        fixcm=False,  # fixcm=True is deprecated (wrong NVT sampling); Stationary() above
        rng=rng,
    )
    snapshots = run.snapshots

    def observe() -> None:
        step = dynamics.nsteps
        if on_step is not None and step > 0:
            on_step(step)
        if step > 0 and step % snapshot_every == 0:
            frame = atoms.copy()
            frame.calc = None
            snapshots.append(
                MDSnapshot(
                    atoms=frame,
                    step=step,
                    time_fs=step * timestep_fs,
                    potential_energy_ev=float(atoms.get_potential_energy()),
                    temperature_k=float(atoms.get_temperature()),
                )
            )

    dynamics.attach(observe, interval=1)
    try:
        dynamics.run(n_steps)
    except stop_on as error:
        run.error = error
    return run
