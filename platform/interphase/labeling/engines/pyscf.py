"""Molecular HF/DFT through PySCF (GPU through gpu4pyscf when it and a GPU are present).

The default hybrid level of the paper, ωB97X-D3BJ/def2-TZVPD, runs with density
fitting and analytic gradients; the D3(BJ) term comes from ``pyscf-dispersion``
and is included in both energy and gradient. PySCF works in Bohr/Hartree
internally; positions go in as Å, gradients (Hartree/Bohr) and dipoles (e·Bohr)
are converted to Hartree/Å and e·Å at this boundary.

Settings (all optional): ``density_fit`` (bool, default True), ``auxbasis``,
``conv_tol_hartree`` (1e-9), ``max_iterations`` (100), ``damping`` (0..1),
``level_shift_hartree``, ``grid_level`` (3), ``max_memory_mb`` (4000),
``threads``, ``use_gpu`` (default: when gpu4pyscf and a GPU are present).
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from ase.units import Bohr  # Å per Bohr

from interphase.labeling.engine import (
    Availability,
    Calculation,
    Capabilities,
    EngineCrashed,
    EngineUnavailable,
    InvalidInput,
    LabelingEngine,
    SCFNotConverged,
)
from interphase.records import LabelRecord, StructureRecord

EXTRA_HINT = "pip install 'interphase[pyscf]'"
LOG_TAIL_CHARS = 4000
KNOWN_SETTINGS = frozenset(
    {
        "density_fit",
        "auxbasis",
        "conv_tol_hartree",
        "max_iterations",
        "damping",
        "level_shift_hartree",
        "grid_level",
        "max_memory_mb",
        "threads",
        "use_gpu",
    }
)


def gpu_available() -> bool:
    """True when gpu4pyscf is importable and CUDA reports at least one device."""
    try:
        import cupy  # type: ignore[import-not-found]
        import gpu4pyscf  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    try:
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # cupy raises its own CUDARuntimeError when no driver is there
        return False


class PySCFEngine(LabelingEngine):
    """Gaussian-basis HF and Kohn–Sham DFT, closed or open shell, non-periodic."""

    name = "pyscf"
    capabilities = Capabilities(
        periodic=False, gradients=True, charges=False, dipole=True, gpu=True
    )
    isolate = True
    scf_rescue_steps = (
        {"damping": 0.5, "max_iterations": 200},
        {"damping": 0.5, "level_shift_hartree": 0.3, "max_iterations": 400},
    )

    def available(self) -> Availability:
        try:
            import pyscf  # noqa: F401
        except ImportError as error:
            return Availability(False, f"pyscf is not importable ({error}); {EXTRA_HINT}")
        return Availability(True)

    def version(self) -> str:
        return metadata.version("pyscf")

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        self.check(structure)
        settings = dict(calculation.settings)
        unknown = set(settings) - KNOWN_SETTINGS
        if unknown:
            raise InvalidInput(
                f"pyscf does not know the settings {sorted(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_SETTINGS))}"
            )
        if not calculation.basis:
            raise InvalidInput("pyscf needs a basis set (e.g. def2-SVP)")
        with tempfile.TemporaryDirectory(prefix="interphase-pyscf-") as scratch:
            log_path = Path(scratch) / "pyscf.log"
            try:
                with log_path.open("w") as log:
                    return self._run(structure, calculation, settings, log)
            except (SCFNotConverged, InvalidInput, EngineUnavailable) as error:
                error.log_tail = error.log_tail or _tail(log_path)
                raise
            except (RuntimeError, ValueError, KeyError, MemoryError, np.linalg.LinAlgError) as e:
                raise EngineCrashed(
                    f"pyscf failed: {type(e).__name__}: {e}", log_tail=_tail(log_path)
                ) from e

    def _run(
        self,
        structure: StructureRecord,
        calculation: Calculation,
        settings: dict[str, Any],
        log: TextIO,
    ) -> LabelRecord:
        from pyscf import lib

        if "threads" in settings:
            lib.num_threads(int(settings["threads"]))
        mol = _molecule(structure, calculation.basis or "", settings, log)
        mf, method_kind = _mean_field(mol, calculation.method, settings)
        use_gpu = bool(settings.get("use_gpu", gpu_available()))
        if use_gpu:
            mf = mf.to_gpu()
        energy = float(mf.kernel())
        if not mf.converged:
            raise SCFNotConverged(
                f"pyscf {calculation.method}/{calculation.basis} SCF did not converge in "
                f"{mf.max_cycle} iterations; retry with damping, level_shift_hartree or "
                "more max_iterations",
            )
        gradient = np.asarray(_to_numpy(mf.nuc_grad_method().kernel()), dtype=float) / Bohr
        dipole = np.asarray(_to_numpy(mf.dip_moment(unit="AU", verbose=0)), dtype=float) * Bohr
        return LabelRecord(
            level=calculation.method,
            total_energy_hartree=energy,
            gradient_hartree_per_angstrom=gradient,
            dipole_e_angstrom=dipole,
            provenance={
                "engine": self.name,
                "engine_version": self.version(),
                "method": calculation.method,
                "basis": calculation.basis,
                "reference": method_kind,
                "settings": settings,
                "density_fit": bool(settings.get("density_fit", True)),
                "n_basis": int(mol.nao_nr()),
                "scf_cycles": int(getattr(mf, "cycles", -1)),
                "device": "gpu" if use_gpu else "cpu",
                "threads": int(lib.num_threads()),
            },
        )


def _molecule(structure: StructureRecord, basis: str, settings: dict[str, Any], log: TextIO) -> Any:
    from pyscf import gto

    mol = gto.Mole()
    mol.atom = [
        (symbol, tuple(float(x) for x in xyz))
        for symbol, xyz in zip(structure.symbols, structure.positions_angstrom, strict=True)
    ]
    mol.unit = "Angstrom"
    mol.basis = basis
    mol.charge = int(structure.charge)
    mol.spin = int(structure.multiplicity) - 1
    mol.max_memory = float(settings.get("max_memory_mb", 4000))
    mol.verbose = 4
    mol.stdout = log  # the SCF log, whose tail a failed job keeps
    try:
        mol.build()
    except (RuntimeError, KeyError, ValueError) as error:
        raise InvalidInput(
            f"pyscf cannot build the molecule with basis {basis!r}, charge {structure.charge}, "
            f"multiplicity {structure.multiplicity}: {error}"
        ) from error
    return mol


def _mean_field(mol: Any, method: str, settings: dict[str, Any]) -> tuple[Any, str]:
    """The SCF object for ``method`` (HF or an xc functional, e.g. wB97X-D3BJ)."""
    from pyscf import dft, scf

    open_shell = mol.spin != 0
    if method.upper() == "HF":
        mf = scf.UHF(mol) if open_shell else scf.RHF(mol)
        kind = "UHF" if open_shell else "RHF"
    else:
        xc = method.lower()
        if any(tag in xc for tag in ("-d3", "-d4")):
            try:
                import pyscf.dispersion  # noqa: F401
            except ImportError as error:
                raise EngineUnavailable(
                    f"{method} needs pyscf-dispersion ({error}); {EXTRA_HINT}"
                ) from error
        mf = dft.UKS(mol) if open_shell else dft.RKS(mol)
        try:
            mf.xc = xc
        except (KeyError, ValueError) as error:
            raise InvalidInput(f"pyscf does not know the functional {method!r}: {error}") from error
        mf.grids.level = int(settings.get("grid_level", 3))
        kind = "UKS" if open_shell else "RKS"
    mf.conv_tol = float(settings.get("conv_tol_hartree", 1e-9))
    mf.max_cycle = int(settings.get("max_iterations", 100))
    mf.damp = float(settings.get("damping", 0.0))
    mf.level_shift = float(settings.get("level_shift_hartree", 0.0))
    if settings.get("density_fit", True):
        auxbasis = settings.get("auxbasis")
        mf = mf.density_fit(auxbasis=auxbasis) if auxbasis else mf.density_fit()
    return mf, kind


def _to_numpy(value: Any) -> Any:
    return value.get() if hasattr(value, "get") and not isinstance(value, dict) else value


def _tail(path: Path) -> str | None:
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    return text[-LOG_TAIL_CHARS:]
