"""The MD driver: frames, determinism, NVE, the physicality guard, stop_on, trajectories."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron
from ase.io import read

from interphase.dynamics import MDSettings, MDSettingsError, PhysicalityGuard, run_md
from interphase.labeling.ase_calculator import xtb_calculator
from interphase.labeling.engines.contract import EngineError
from interphase.records import StructureRecord
from interphase.structures.molecules import molecule
from interphase.structures.validate import validate_structure


@pytest.fixture(autouse=True)
def single_openmp_thread() -> Iterator[None]:
    """tblite single-threaded: its busy-waiting OpenMP threads crawl on a shared 2-core box."""
    import tblite.interface  # noqa: F401  (loads the OpenMP runtime to be limited)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def argon_lj() -> LennardJones:
    return LennardJones(sigma=3.4, epsilon=0.0104, rc=10.0)


def argon_cluster() -> Atoms:
    return Icosahedron("Ar", 2)  # 13 atoms


class FailsAfter(Calculator):  # type: ignore[misc]
    """LJ that raises after ``calls`` force calls: an SCF failure on demand, mid-run."""

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012

    def __init__(self, calls: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.left = calls
        self.inner = argon_lj()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        if self.left == 0:
            raise RuntimeError("no convergence (on purpose)")
        self.left -= 1
        self.inner.calculate(self.atoms, ["energy", "forces"], all_changes)
        self.results = dict(self.inner.results)


class JumpsAt(FailsAfter):
    """LJ whose energy jumps by ``jump_ev`` from the ``calls``-th call on (forces unchanged)."""

    def __init__(self, calls: int, jump_ev: float) -> None:
        super().__init__(calls=10**9)
        self.calls, self.jump_ev, self.done = calls, jump_ev, 0

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        self.done += 1
        if self.done > self.calls:
            self.results["energy"] += self.jump_ev
            self.results["free_energy"] += self.jump_ev


def test_frames_every_kth_step_with_copies_and_times() -> None:
    atoms = molecule("EC").atoms.copy()
    settings = MDSettings(steps=12, timestep_fs=0.5, snapshot_every=4, seed=1)
    result = run_md(atoms, LennardJones(sigma=2.0, epsilon=0.01, rc=6.0), settings)
    assert [f.step for f in result.frames] == [4, 8, 12]
    assert [f.time_fs for f in result.frames] == pytest.approx([2.0, 4.0, 6.0])
    assert result.steps_done == 12 and result.error is None and result.unphysical is None
    last = result.frames[-1]
    assert last.atoms is not atoms and last.atoms.calc is None
    np.testing.assert_allclose(last.atoms.positions, atoms.positions)  # the atoms moved in place
    assert result.final_potential_energy_ev == pytest.approx(last.potential_energy_ev)
    assert result.final_temperature_k == pytest.approx(last.temperature_k)
    assert result.speed.steps_timed == 12 and result.speed.ms_per_step > 0
    assert run_md(atoms.copy(), argon_lj(), settings, keep_frames=False).frames == []


@pytest.mark.parametrize("thermostat", ["langevin", "nve"])
def test_same_seed_same_frames_other_seed_differs(thermostat: Literal["langevin", "nve"]) -> None:
    def positions(seed: int) -> np.ndarray:
        settings = MDSettings(
            steps=20, timestep_fs=5.0, temperature_k=80.0, thermostat=thermostat, seed=seed
        )
        result = run_md(argon_cluster(), argon_lj(), settings)
        return np.stack([f.atoms.positions for f in result.frames])

    first, again, other = positions(1), positions(1), positions(2)
    np.testing.assert_allclose(first, again, rtol=0, atol=1e-9)
    assert not np.allclose(first, other, atol=1e-3)


def test_start_has_the_temperature_and_no_net_momentum() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))  # 108 atoms
    run_md(atoms, EMT(), MDSettings(steps=0, temperature_k=500.0, thermostat="nve"))
    np.testing.assert_allclose(atoms.get_momenta().sum(axis=0), 0.0, atol=1e-9)
    assert 350.0 < atoms.get_temperature() < 650.0  # one Maxwell-Boltzmann draw of 108 atoms
    still = bulk("Cu", "fcc", a=3.6, cubic=True)
    still.set_velocities(np.ones((4, 3)))
    run_md(still, EMT(), MDSettings(steps=0, temperature_k=0.0, thermostat="nve"))
    assert still.get_temperature() == 0.0  # 0 K starts from rest


def test_nve_conserves_total_energy_with_emt() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=3)
    totals: list[float] = []
    potentials: list[float] = []

    def record(_: int, moving: Atoms) -> None:
        totals.append(moving.get_total_energy())
        potentials.append(moving.get_potential_energy())

    settings = MDSettings(steps=200, timestep_fs=2.0, temperature_k=300.0, thermostat="nve")
    run_md(atoms, EMT(), settings, on_step=record)
    assert len(totals) == 200
    assert np.ptp(potentials) > 0.05  # eV: energy really flows between kinetic and potential
    assert np.ptp(totals) < 0.02 * np.ptp(potentials)


def test_langevin_with_gfn2_xtb_gives_finite_energies() -> None:
    settings = MDSettings(steps=6, snapshot_every=3)
    result = run_md(molecule("EC").atoms.copy(), xtb_calculator(), settings)
    assert result.error is None and len(result.frames) == 2
    assert np.isfinite([f.potential_energy_ev for f in result.frames]).all()


def test_guard_stops_a_blow_up_and_keeps_only_valid_frames(tmp_path: Path) -> None:
    # A 40 fs step is far too long for argon at 3000 K: atoms land inside each other.
    settings = MDSettings(steps=200, timestep_fs=40.0, temperature_k=3000.0, snapshot_every=5)
    trajectory = tmp_path / "md.extxyz"
    energies_ev: list[float] = []
    run_md(
        argon_cluster(),
        argon_lj(),
        settings,
        on_step=lambda _, atoms: energies_ev.append(atoms.get_potential_energy()),
    )
    assert np.nanmax(energies_ev) > 13.0  # more than 1 eV/atom above a bound cluster: blown up
    result = run_md(
        argon_cluster(), argon_lj(), settings, trajectory=trajectory, guard=PhysicalityGuard()
    )
    assert result.unphysical is not None and result.error is None
    stop = int(result.unphysical.split(":")[0].removeprefix("step "))
    assert 5 < stop < 200 and result.steps_done == stop - 1
    assert "energy jumped" in result.unphysical or "validator" in result.unphysical
    assert result.frames and all(f.step < stop for f in result.frames)
    assert [f.step for f in result.frames] == list(range(5, stop, 5))
    for frame in result.frames:
        validate_structure(StructureRecord.from_atoms(frame.atoms))
    assert max(f.potential_energy_ev for f in result.frames) < 13.0  # below 1 eV/atom
    written: list[Atoms] = read(trajectory, ":")  # type: ignore[assignment]
    assert len(written) == result.frames_written == len(result.frames) + 1  # and step 0


def test_guard_names_each_rule() -> None:
    settings = MDSettings(steps=30, timestep_fs=1.0, temperature_k=50.0)
    jump = run_md(
        argon_cluster(), JumpsAt(calls=13, jump_ev=30.0), settings, guard=PhysicalityGuard()
    )
    assert jump.unphysical is not None
    assert jump.unphysical.startswith("step 13: energy jumped 2.31 eV/atom")
    assert jump.steps_done == 12 and [f.step for f in jump.frames] == [10]
    assert jump.final_potential_energy_ev == pytest.approx(
        jump.frames[0].potential_energy_ev, abs=0.1
    )

    close = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 0.3]])
    stopped = run_md(close, argon_lj(), settings, guard=PhysicalityGuard())
    assert stopped.unphysical is not None
    assert stopped.unphysical.startswith("step 0: atoms 0 (Ar) and 1 (Ar) are 0.300 Å apart")
    assert stopped.unphysical.endswith("(validator: too_close)")
    assert stopped.frames == [] and stopped.final_potential_energy_ev is None

    apart = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.0]])  # 0.57 eV/Å of repulsion
    guard = PhysicalityGuard(max_force_ev_per_angstrom=0.5)
    pushed = run_md(apart, argon_lj(), settings, guard=guard)
    assert pushed.unphysical is not None
    assert re.fullmatch(
        r"step 0: force on atom [01] is 0\.57\d eV/Å \(limit 0\.5 eV/Å\)", pushed.unphysical
    )


def test_guard_checks_geometry_every_kth_step_and_at_frames() -> None:
    settings = MDSettings(steps=40, timestep_fs=5.0, temperature_k=80.0, snapshot_every=10)
    calls: list[int] = []

    class Counting(PhysicalityGuard):
        def _geometry(self, step: int, atoms: Atoms) -> str | None:
            calls.append(step)
            return super()._geometry(step, atoms)

    guard = Counting(max_energy_jump_ev_per_atom=1e9, max_force_ev_per_angstrom=1e9, check_every=4)
    assert run_md(argon_cluster(), argon_lj(), settings, guard=guard).unphysical is None
    assert calls == sorted({*range(0, 41, 4), *range(0, 41, 10)})
    with pytest.raises(MDSettingsError, match="check_every"):
        PhysicalityGuard(check_every=0)


def test_stop_on_ends_the_run_and_keeps_frames() -> None:
    settings = MDSettings(steps=20, timestep_fs=1.0, temperature_k=50.0, snapshot_every=3)
    result = run_md(argon_cluster(), FailsAfter(calls=8), settings, stop_on=(RuntimeError,))
    assert isinstance(result.error, RuntimeError)
    assert result.steps_done == 7 and [f.step for f in result.frames] == [3, 6]
    assert result.unphysical is None
    with pytest.raises(RuntimeError):  # not in stop_on: it escapes
        run_md(argon_cluster(), FailsAfter(calls=8), settings)


def test_stop_on_a_real_scf_failure() -> None:
    calculator = xtb_calculator(max_iterations=1)
    settings = MDSettings(steps=5, snapshot_every=1)
    result = run_md(molecule("EC").atoms.copy(), calculator, settings, stop_on=(EngineError,))
    assert isinstance(result.error, EngineError)
    assert result.frames == [] and result.final_potential_energy_ev is None


def test_langevin_at_zero_kelvin_is_one_line() -> None:
    with pytest.raises(MDSettingsError, match="Langevin thermostat needs a temperature") as caught:
        run_md(argon_cluster(), argon_lj(), MDSettings(steps=1, temperature_k=0.0))
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="snapshot_every"):
        MDSettings(steps=1, snapshot_every=0)
    with pytest.raises(ValueError, match="extra"):
        MDSettings(steps=1, trajectory_interval=3)  # type: ignore[call-arg]
