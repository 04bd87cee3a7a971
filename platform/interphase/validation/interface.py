"""The ``interface`` suite: does the head run stable MD, and are its forces right along the way?

Unlike the other suites, the reference is judged on the head's own trajectory:

1. **NVT** (Langevin, ``temperature_k``) of the interface with the head for
   ``nvt_ps``, under the physicality guard (:class:`~interphase.dynamics.PhysicalityGuard`):
   the time reached before the guard stops it (or the full length).
2. **NVE** (velocity Verlet) for ``nve_ps`` from the last NVT frame, velocities
   drawn anew at ``temperature_k``: the drift of the total energy, the slope of a
   least-squares line through E_total/N against time, in meV/atom/ps.
3. **Forces** of ``frames`` frames sampled evenly from the NVT run, with the head
   and with the reference level: MAE over components (eV/Å), the mean angle between
   the two force vectors of atoms whose reference force exceeds 0.1 eV/Å (degrees),
   and the fraction of atoms whose force error vector is longer than 1 eV/Å (paper
   002's outlier measure).

The reference forces are cached per model file and settings, with their frames;
a later validation of the same model judges the head on those cached frames.
Targets (issue 22): the full NVT length with no guard stop, drift ≤ 1 meV/atom/ps,
under 0.5 % outlier atoms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from interphase.dynamics import MDSettings, PhysicalityGuard, run_md
from interphase.validation.checks import Check, Tolerance

#: Force error (eV/Å, length of the per-atom error vector) above which an atom is an outlier.
OUTLIER_EV_PER_ANGSTROM = 1.0
#: Reference force (eV/Å) below which an atom's force direction is not judged.
DIRECTION_MIN_FORCE_EV_PER_ANGSTROM = 0.1


@dataclass(frozen=True)
class InterfaceSettings:
    """The ``interface`` suite's structure and MD settings."""

    structure: str | None = None  # a file ASE reads; default: 2 EC on a 3x3 Li(100) slab
    temperature_k: float = 300.0
    nvt_ps: float = 10.0
    nve_ps: float = 2.0
    timestep_fs: float = 0.5
    frames: int = 20
    seed: int = 0

    def nvt_steps(self) -> int:
        return max(1, round(self.nvt_ps * 1000.0 / self.timestep_fs))

    def nve_steps(self) -> int:
        return max(1, round(self.nve_ps * 1000.0 / self.timestep_fs))


def interface_settings(values: Mapping[str, Any]) -> InterfaceSettings:
    """:class:`InterfaceSettings` from a mapping, checked (a :class:`ValueError` names the key)."""
    known = InterfaceSettings.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown interface suite setting(s) {unknown}; known: {', '.join(known)}")
    settings = InterfaceSettings(**dict(values))
    if settings.structure is not None and not Path(settings.structure).is_file():
        raise ValueError(f"interface structure file {settings.structure} does not exist")
    if not 0 < settings.temperature_k <= 5000:
        raise ValueError(f"temperature_k={settings.temperature_k}: expected 0 to 5000 K")
    if not (0 < settings.nvt_ps <= 1000 and 0 < settings.nve_ps <= 1000):
        raise ValueError("nvt_ps and nve_ps must be above 0 and at most 1000 ps")
    if not 0.05 <= settings.timestep_fs <= 5:
        raise ValueError(f"timestep_fs={settings.timestep_fs}: expected 0.05 to 5 fs")
    if not 1 <= settings.frames <= 1000:
        raise ValueError(f"frames={settings.frames}: expected 1 to 1000")
    return settings


def interface_structure(settings: InterfaceSettings) -> Atoms:
    """The start structure: the file's first image, or the default Li(100)/2 EC interface.

    Built once per settings and file version (the element check and the MD both
    need it); a copy each call.
    """
    version = None if settings.structure is None else Path(settings.structure).stat().st_mtime_ns
    return _start_structure(settings, version).copy()


@cache
def _start_structure(settings: InterfaceSettings, _file_version: int | None) -> Atoms:
    if settings.structure is not None:
        from ase.io import read

        atoms = read(settings.structure, index=0)
        assert isinstance(atoms, Atoms)
        return atoms
    from interphase.structures.interface import build_interface

    return build_interface(np.random.default_rng(settings.seed)).atoms


def structure_elements(settings: InterfaceSettings) -> tuple[str, ...]:
    return tuple(sorted(set(interface_structure(settings).get_chemical_symbols())))


def run_dynamics(settings: InterfaceSettings, calculator: Calculator) -> dict[str, Any]:
    """NVT under the guard, then NVE from its last frame, with ``calculator`` (the head).

    Returns JSON values: how far NVT got and why it stopped, the NVE drift, and
    the sampled frames (numbers, cell, pbc, positions) for the force comparison.
    """
    atoms = interface_structure(settings)
    steps = settings.nvt_steps()
    every = max(1, steps // settings.frames)
    nvt = run_md(
        atoms,
        calculator,
        MDSettings(
            steps=steps,
            timestep_fs=settings.timestep_fs,
            temperature_k=settings.temperature_k,
            snapshot_every=every,
            seed=settings.seed,
        ),
        guard=PhysicalityGuard(),
    )
    frames = [frame.atoms for frame in nvt.frames if frame.step > 0][-settings.frames :]
    if not frames and nvt.frames:
        frames = [nvt.frames[0].atoms]
    drift, nve_steps, nve_stop = _nve_drift(frames[-1] if frames else atoms, calculator, settings)
    positions = [np.round(frame.positions, 10).tolist() for frame in frames]
    return {
        "nvt_ps_target": steps * settings.timestep_fs / 1000.0,
        "nvt_ps_completed": nvt.steps_done * settings.timestep_fs / 1000.0,
        "guard_stop": nvt.unphysical or (str(nvt.error) if nvt.error else None),
        "nve_drift_mev_per_atom_ps": drift,
        "nve_ps_completed": nve_steps * settings.timestep_fs / 1000.0,
        "nve_guard_stop": nve_stop,
        "n_atoms": len(atoms),
        "frames": {
            "numbers": atoms.numbers.tolist(),
            "cell_angstrom": np.asarray(atoms.cell).tolist(),
            "pbc": [bool(p) for p in atoms.pbc],
            "positions_angstrom": positions,
        },
        "model_forces_ev_per_angstrom": [frame_forces(frame, calculator) for frame in frames],
    }


def _nve_drift(
    start: Atoms, calculator: Calculator, settings: InterfaceSettings
) -> tuple[float, int, str | None]:
    """|slope| of E_total per atom against time (meV/atom/ps) over an NVE run from ``start``."""
    atoms = start.copy()
    times_ps: list[float] = []
    energies: list[float] = []

    def record(step: int, current: Atoms) -> None:
        times_ps.append(step * settings.timestep_fs / 1000.0)
        energies.append(float(current.get_total_energy()) / len(current))

    result = run_md(
        atoms,
        calculator,
        MDSettings(
            steps=settings.nve_steps(),
            timestep_fs=settings.timestep_fs,
            temperature_k=settings.temperature_k,
            thermostat="nve",
            snapshot_every=settings.nve_steps(),
            seed=settings.seed + 1,
        ),
        keep_frames=False,
        on_step=record,
        guard=PhysicalityGuard(),
    )
    if len(times_ps) < 2:
        return math.inf, result.steps_done, result.unphysical or "no NVE step completed"
    slope_ev_per_ps = float(np.polyfit(times_ps, energies, 1)[0])
    return abs(slope_ev_per_ps) * 1000.0, result.steps_done, result.unphysical


def frame_forces(atoms: Atoms, calculator: Calculator) -> list[list[float]]:
    """Forces (eV/Å) on one frame, as JSON."""
    frame = atoms.copy()
    frame.calc = calculator
    return np.round(np.asarray(frame.get_forces(), dtype=np.float64), 8).tolist()


def frame_atoms(values: Mapping[str, Any]) -> list[Atoms]:
    """The sampled frames of :func:`run_dynamics`'s values, as ASE atoms."""
    frames = values["frames"]
    return [
        Atoms(
            numbers=frames["numbers"],
            positions=positions,
            cell=frames["cell_angstrom"],
            pbc=frames["pbc"],
        )
        for positions in frames["positions_angstrom"]
    ]


def reference_forces(values: Mapping[str, Any], calculator: Calculator) -> dict[str, Any]:
    """The head's sampled frames and the reference level's forces (eV/Å) on them."""
    return {
        "frames": values["frames"],
        "forces_ev_per_angstrom": [frame_forces(f, calculator) for f in frame_atoms(values)],
    }


@dataclass(frozen=True)
class ForceErrors:
    mae_ev_per_angstrom: float
    direction_error_deg: float
    outlier_fraction: float
    atoms: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _stacked(forces: list[Any]) -> np.ndarray:
    """Per-frame (n, 3) forces as one (frames·n, 3) array."""
    if not forces:
        return np.empty((0, 3))
    return np.concatenate([np.asarray(f, dtype=np.float64).reshape(-1, 3) for f in forces])


def force_errors(model: list[Any], reference: list[Any]) -> ForceErrors:
    """Errors of the head's forces against the reference's over every atom of every frame."""
    m = (
        np.concatenate([np.asarray(f, dtype=np.float64) for f in model])
        if model
        else np.empty((0, 3))
    )
    r = np.concatenate([np.asarray(f, dtype=np.float64) for f in reference]) if reference else m
    if m.shape != r.shape or m.size == 0:
        return ForceErrors(math.inf, math.inf, 1.0, 0)
    error_length = np.linalg.norm(m - r, axis=1)
    strong = np.linalg.norm(r, axis=1) > DIRECTION_MIN_FORCE_EV_PER_ANGSTROM
    cosine = np.sum(m[strong] * r[strong], axis=1) / (
        np.linalg.norm(m[strong], axis=1) * np.linalg.norm(r[strong], axis=1) + 1e-12
    )
    angle = float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))).mean()) if strong.any() else 0.0
    return ForceErrors(
        mae_ev_per_angstrom=float(np.mean(np.abs(m - r))),
        direction_error_deg=angle,
        outlier_fraction=float(np.mean(error_length > OUTLIER_EV_PER_ANGSTROM)),
        atoms=len(m),
    )


def checks(
    model: Mapping[str, Any], reference: Mapping[str, Any], tolerances: Mapping[str, Tolerance]
) -> list[Check]:
    """MD length reached, NVE drift and the force outlier fraction (errors in the note)."""
    reached, target = float(model["nvt_ps_completed"]), float(model["nvt_ps_target"])
    stop = model.get("guard_stop")
    drift = float(model["nve_drift_mev_per_atom_ps"])
    drift_tolerance = tolerances["nve_drift_mev_per_atom_ps"]
    errors = force_errors(
        model["model_forces_ev_per_angstrom"], reference["forces_ev_per_angstrom"]
    )
    outlier_tolerance = tolerances["force_outlier_fraction"]
    nve_note = f"over {float(model['nve_ps_completed']):.3g} ps"
    if model.get("nve_guard_stop"):
        nve_note += f"; guard stopped it: {model['nve_guard_stop']}"
    return [
        Check(
            "nvt_ps_without_guard_stop",
            "ps",
            reached,
            target,
            reached - target,
            "full length",
            stop is None and reached >= target,
            note=f"guard stopped it: {stop}" if stop else "",
        ),
        Check(
            "nve_drift_mev_per_atom_ps",
            "meV/atom/ps",
            drift,
            0.0,
            drift,
            drift_tolerance.describe("meV/atom/ps"),
            drift_tolerance.allows(drift, 0.0) and not model.get("nve_guard_stop"),
            note=nve_note,
        ),
        Check(
            "force_outlier_fraction",
            "",
            errors.outlier_fraction,
            0.0,
            errors.outlier_fraction,
            outlier_tolerance.describe(""),
            errors.atoms > 0 and outlier_tolerance.allows(errors.outlier_fraction, 0.0),
            note=(
                f"> {OUTLIER_EV_PER_ANGSTROM:g} eV/Å over {errors.atoms} atoms; "
                f"force MAE {errors.mae_ev_per_angstrom:.3g} eV/Å, direction error "
                f"{errors.direction_error_deg:.3g}°"
            ),
        ),
    ]
