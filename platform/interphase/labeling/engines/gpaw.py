"""Periodic PBE-D3 with GPAW (plane waves, PAW) and D3 from the ``dftd3`` library.

The paper's periodic level: PBE with D3 dispersion, a 40 Ry plane-wave cutoff,
a 3×3×3 k-mesh for bulk cells and 3×3×1 for slabs. Lithium is a metal, so the
occupations are Fermi–Dirac smeared; the energy reported is the *free* energy,
the one the GPAW forces are derivatives of, so energy and gradient agree.

GPAW energies are relative to its setups' isolated atoms; the all-electron
reference energy of those atoms is added back so ``totalEnergy`` is a total
energy (both parts are kept in the provenance). D3 energy, gradient and virial
come from simple-dftd3 (``dftd3`` on PyPI) in atomic units and are added to the
GPAW energy, forces and stress.

Settings: :class:`GPAWSettings`.
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from ase.units import Bohr, Hartree  # Å per Bohr, eV per Hartree
from pydantic import Field

from interphase.labeling.engines.contract import (
    Availability,
    Calculation,
    Capabilities,
    EngineCrashed,
    EngineUnavailable,
    InvalidInput,
    LabelingEngine,
    OutOfMemory,
    SCFNotConverged,
)
from interphase.labeling.engines.settings import EngineSettings
from interphase.labeling.logtail import tail_of_file
from interphase.records import LabelRecord, StructureRecord

EXTRA_HINT = "pip install 'interphase[gpaw]' (needs libxc-dev, libopenblas-dev and CC=g++)"
RYDBERG_EV = Hartree / 2.0
METHODS = {"PBE-D3": ("PBE", "zero"), "PBE-D3BJ": ("PBE", "bj"), "PBE": ("PBE", None)}

KMesh = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)]


class GPAWSettings(EngineSettings):
    """Settings of the gpaw engine (all optional)."""

    ecut_ry: float = Field(default=40.0, gt=0, description="Plane-wave cutoff (Rydberg).")
    ecut_ev: float | None = Field(
        default=None, gt=0, description="Plane-wave cutoff (eV); wins over ecut_ry when given."
    )
    kpts: KMesh | None = Field(default=None, description="Explicit k-point mesh (3 integers).")
    kpts_bulk: KMesh = Field(default=[3, 3, 3], description="k-mesh of bulk cells.")
    kpts_slab: KMesh = Field(default=[3, 3, 1], description="k-mesh of slabs.")
    slab: bool | None = Field(
        default=None, description="Treat the cell as a slab (default: non-periodic along z)."
    )
    smearing_width_ev: float = Field(
        default=0.1, ge=0, description="Fermi-Dirac smearing width (eV)."
    )
    max_iterations: int = Field(default=333, ge=1, description="Maximum SCF iterations.")
    mixer_beta: float | None = Field(
        default=None, gt=0, le=1, description="Density mixing fraction (default GPAW's)."
    )
    d3_damping: Literal["zero", "bj"] | None = Field(
        default=None, description="D3 damping (default: the method's; null with PBE: none)."
    )
    stress: bool = Field(default=False, description="Also compute the stress tensor.")


class GPAWEngine(LabelingEngine):
    """Plane-wave PAW DFT for periodic metals and slabs, with D3 dispersion."""

    name = "gpaw"
    settings_model = GPAWSettings
    capabilities = Capabilities(periodic=True, gradients=True, charges=False, dipole=False)
    isolate = True
    scf_rescue_steps = ({"mixer_beta": 0.02, "max_iterations": 600},)

    def available(self) -> Availability:
        try:
            import dftd3.interface  # noqa: F401
            import gpaw  # noqa: F401
        except ImportError as error:
            return Availability(False, f"gpaw/dftd3 not importable ({error}); {EXTRA_HINT}")
        return Availability(True)

    def version(self) -> str:
        return metadata.version("gpaw")

    def check(self, structure: StructureRecord) -> None:
        super().check(structure)
        if not structure.is_periodic or structure.cell_angstrom is None:
            raise InvalidInput("gpaw (plane waves) labels periodic cells only; give a lattice")

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        self.check(structure)
        self.parse_settings(calculation.settings)
        settings = dict(calculation.settings)
        if calculation.method not in METHODS:
            raise InvalidInput(
                f"gpaw engine has no method {calculation.method!r}; choose {', '.join(METHODS)}"
            )
        if calculation.log_path is not None:
            return self._run(structure, calculation, settings, Path(calculation.log_path))
        with tempfile.TemporaryDirectory(prefix="interphase-gpaw-") as scratch:
            return self._run(structure, calculation, settings, Path(scratch) / "gpaw.txt")

    def _run(
        self,
        structure: StructureRecord,
        calculation: Calculation,
        settings: dict[str, Any],
        log_path: Path,
    ) -> LabelRecord:
        xc, default_damping = METHODS[calculation.method]
        damping = settings.get("d3_damping", default_damping)
        atoms, kpts = _atoms_and_kpts(structure, settings)
        with open(log_path, "a", buffering=1) as log:
            atoms.calc = _calculator(xc, kpts, settings, structure.multiplicity, log)
            free_energy_ev, forces_ev_per_angstrom, stress_ev, reference_ev = _single_point(
                atoms, bool(settings.get("stress")), log, log_path
            )
        energy_hartree = (free_energy_ev + reference_ev) / Hartree
        gradient = -forces_ev_per_angstrom / Hartree
        provenance: dict[str, Any] = {
            "engine": self.name,
            "engine_version": self.version(),
            "method": calculation.method,
            "xc": xc,
            "settings": settings,
            "kpts": list(kpts),
            "ecut_ev": _ecut_ev(settings),
            "energy": "free energy (Fermi-Dirac) + all-electron reference of the setups' atoms",
            "gpaw_free_energy_ev": free_energy_ev,
            "reference_energy_ev": reference_ev,
        }
        if damping is not None:
            d3 = d3_correction(structure, xc, damping)
            energy_hartree += d3["energy"]
            gradient = gradient + d3["gradient"] / Bohr
            provenance["d3"] = {
                "damping": damping,
                "energy_hartree": float(d3["energy"]),
                "library": f"dftd3 {metadata.version('dftd3')}",
            }
            if stress_ev is not None:
                volume_bohr3 = abs(np.linalg.det(np.asarray(structure.cell_angstrom))) / Bohr**3
                stress_ev = stress_ev + d3["virial"] / volume_bohr3 * Hartree / Bohr**3
        if stress_ev is not None:
            provenance["stress_ev_per_angstrom3"] = np.asarray(stress_ev).tolist()
        return LabelRecord(
            level=calculation.method,
            total_energy_hartree=float(energy_hartree),
            gradient_hartree_per_angstrom=gradient,
            provenance=provenance,
        )


def d3_correction(structure: StructureRecord, xc: str, damping: str) -> dict[str, Any]:
    """D3 energy (Hartree), gradient (Hartree/Bohr) and virial (Hartree) from simple-dftd3."""
    try:
        from dftd3.interface import DispersionModel, RationalDampingParam, ZeroDampingParam
    except ImportError as error:
        raise EngineUnavailable(f"dftd3 is not importable ({error}); {EXTRA_HINT}") from error
    if damping not in ("zero", "bj"):
        raise InvalidInput(f"d3_damping must be 'zero' or 'bj', not {damping!r}")
    model = DispersionModel(
        np.asarray(structure.numbers, dtype=int),
        np.asarray(structure.positions_angstrom, dtype=float) / Bohr,
        lattice=np.asarray(structure.cell_angstrom, dtype=float) / Bohr,
        periodic=np.asarray(structure.pbc, dtype=bool),
    )
    param = ZeroDampingParam(method=xc) if damping == "zero" else RationalDampingParam(method=xc)
    return dict(model.get_dispersion(param, grad=True))


def _ecut_ev(settings: dict[str, Any]) -> float:
    if "ecut_ev" in settings:
        return float(settings["ecut_ev"])
    return float(settings.get("ecut_ry", 40.0)) * RYDBERG_EV


def _atoms_and_kpts(structure: StructureRecord, settings: dict[str, Any]) -> tuple[Any, tuple]:
    """ASE atoms (periodic in all directions, as plane waves need) and the k-mesh.

    A slab (non-periodic along z, or ``slab: true``) keeps its vacuum in the cell
    and gets ``kpts_slab``.
    """
    from ase import Atoms

    slab = bool(settings.get("slab", not structure.pbc[2]))
    if "kpts" in settings:
        kpts = tuple(int(k) for k in settings["kpts"])
    else:
        kpts = tuple(int(k) for k in settings.get("kpts_slab" if slab else "kpts_bulk", ()))
        kpts = kpts or ((3, 3, 1) if slab else (3, 3, 3))
    atoms = Atoms(
        numbers=np.asarray(structure.numbers, dtype=int),
        positions=np.asarray(structure.positions_angstrom, dtype=float),
        cell=np.asarray(structure.cell_angstrom, dtype=float),
        pbc=True,
    )
    return atoms, kpts


def _calculator(xc: str, kpts: tuple, settings: dict[str, Any], multiplicity: int, log: Any) -> Any:
    from gpaw import GPAW, PW, FermiDirac, Mixer

    parameters: dict[str, Any] = {
        "mode": PW(_ecut_ev(settings)),
        "xc": xc,
        "kpts": kpts,
        "occupations": FermiDirac(float(settings.get("smearing_width_ev", 0.1))),
        "maxiter": int(settings.get("max_iterations", 333)),
        "txt": log,
    }
    if multiplicity > 1:
        parameters["spinpol"] = True
    if "mixer_beta" in settings:
        parameters["mixer"] = Mixer(beta=float(settings["mixer_beta"]), nmaxold=5, weight=50.0)
    return GPAW(**parameters)


def _single_point(
    atoms: Any, stress: bool, log: Any, log_path: Path
) -> tuple[float, np.ndarray, Any, float]:
    """Free energy (eV), forces (eV/Å), stress (eV/Å³ or None), setups' reference energy (eV)."""
    from gpaw import KohnShamConvergenceError

    try:
        free_energy_ev = float(atoms.get_potential_energy(force_consistent=True))
        forces_ev_per_angstrom = np.asarray(atoms.get_forces(), dtype=float)
        stress_ev = atoms.get_stress(voigt=False) if stress else None
        reference_ev = float(atoms.calc.get_reference_energy())
    except KohnShamConvergenceError as error:
        log.flush()
        raise SCFNotConverged(
            f"gpaw SCF did not converge: {error}; retry with more max_iterations "
            "or a smaller mixer_beta",
            log_tail=tail_of_file(log_path),
        ) from error
    except MemoryError as error:
        log.flush()
        raise OutOfMemory(
            f"gpaw ran out of memory: {error}", log_tail=tail_of_file(log_path)
        ) from error
    except (RuntimeError, ValueError) as error:
        log.flush()
        raise EngineCrashed(
            f"gpaw failed: {type(error).__name__}: {error}", log_tail=tail_of_file(log_path)
        ) from error
    return free_energy_ev, forces_ev_per_angstrom, stress_ev, reference_ev
