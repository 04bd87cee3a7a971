"""Molecular HF/DFT through PySCF (GPU through gpu4pyscf when it and a GPU are present).

The default hybrid level of the paper, ωB97X-D3BJ/def2-TZVPD, runs with density
fitting and analytic gradients; the D3(BJ) term comes from ``pyscf-dispersion``
and is included in both energy and gradient. PySCF works in Bohr/Hartree
internally; positions go in as Å, gradients (Hartree/Bohr) and dipoles (e·Bohr)
are converted to Hartree/Å and e·Å at this boundary.

Settings: :class:`PySCFSettings`. Under a job memory limit, ``max_memory_mb``
follows the limit (:meth:`PySCFEngine.fit_memory`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from ase.units import Bohr  # Å per Bohr
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

EXTRA_HINT = "pip install 'interphase[pyscf]'"

#: Under a memory limit, what PySCF's ``max_memory`` leaves for everything it does
#: not count: its budget covers the large intermediates (ERIs, DF tensors, AO values
#: on grid blocks), not BLAS/OpenMP thread stacks and buffers, libcint workspaces,
#: numpy temporaries or malloc arenas, and PySCF overshoots it by tens of percent
#: on small systems. Measured on water HF and wB97X/def2-SVP (bench/RESULTS.md).
MEMORY_HEADROOM_MB = 256.0
MEMORY_HEADROOM_FRACTION = 0.25
#: Below this ``max_memory`` PySCF cannot do even a small molecule direct.
MIN_MAX_MEMORY_MB = 64.0


class PySCFSettings(EngineSettings):
    """Settings of the pyscf engine (all optional)."""

    density_fit: bool = Field(default=True, description="Density fitting (RI-J/K).")
    auxbasis: str | None = Field(
        default=None, description="Auxiliary basis for density fitting (default: PySCF's)."
    )
    conv_tol_hartree: float = Field(
        default=1e-9, gt=0, description="SCF energy convergence threshold (Hartree)."
    )
    max_iterations: int = Field(default=100, ge=1, description="Maximum SCF iterations.")
    damping: float = Field(default=0.0, ge=0, lt=1, description="SCF density damping factor.")
    level_shift_hartree: float = Field(
        default=0.0, ge=0, description="Virtual-orbital level shift (Hartree)."
    )
    grid_level: int = Field(default=3, ge=0, le=9, description="DFT integration grid level.")
    max_memory_mb: float = Field(
        default=4000.0,
        gt=0,
        description="PySCF's memory budget (MB); under a job memory limit it is fitted to it.",
    )
    threads: int | None = Field(
        default=None, ge=1, description="OpenMP threads (default: PySCF's, OMP_NUM_THREADS)."
    )
    use_gpu: bool | None = Field(
        default=None, description="Run on the GPU with gpu4pyscf (default: when present)."
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
    settings_model = PySCFSettings
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

    def preload(self) -> None:
        import pyscf.df
        import pyscf.dft
        import pyscf.grad
        import pyscf.scf  # noqa: F401

    def fit_memory(self, calculation: Calculation, available_mb: float) -> Calculation:
        """Set ``max_memory_mb`` to what the memory limit leaves, less the headroom.

        An explicit, smaller ``max_memory_mb`` is kept.

        Raises
        ------
        OutOfMemory
            When the limit leaves PySCF less than :data:`MIN_MAX_MEMORY_MB`.
        """
        headroom = max(MEMORY_HEADROOM_MB, MEMORY_HEADROOM_FRACTION * available_mb)
        budget = available_mb - headroom
        if budget < MIN_MAX_MEMORY_MB:
            raise OutOfMemory(
                f"the memory limit leaves {max(available_mb, 0):.0f} MB once pyscf is loaded; "
                f"pyscf needs {MIN_MAX_MEMORY_MB + MEMORY_HEADROOM_MB:.0f} MB or more "
                "(max_memory plus headroom): give the job a larger memory_limit_mb"
            )
        given = calculation.settings.get("max_memory_mb")
        fitted = budget if given is None else min(float(given), budget)
        return replace(calculation, settings={**calculation.settings, "max_memory_mb": fitted})

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        self.check(structure)
        settings = self.parse_settings(calculation.settings)
        if not calculation.basis:
            raise InvalidInput("pyscf needs a basis set (e.g. def2-SVP)")
        with _log_file(calculation.log_path) as (log, log_path):
            try:
                return self._run(structure, calculation, settings, log)
            except (SCFNotConverged, InvalidInput, EngineUnavailable) as error:
                log.flush()
                error.log_tail = error.log_tail or tail_of_file(log_path)
                raise
            except MemoryError as error:
                log.flush()
                raise OutOfMemory(
                    f"pyscf ran out of memory: {error}", log_tail=tail_of_file(log_path)
                ) from error
            except (RuntimeError, ValueError, KeyError, np.linalg.LinAlgError) as e:
                log.flush()
                raise EngineCrashed(
                    f"pyscf failed: {type(e).__name__}: {e}", log_tail=tail_of_file(log_path)
                ) from e

    def _run(
        self,
        structure: StructureRecord,
        calculation: Calculation,
        settings: PySCFSettings,
        log: TextIO,
    ) -> LabelRecord:
        from pyscf import lib

        if settings.threads is not None:
            lib.num_threads(settings.threads)
        mol = _molecule(structure, calculation.basis or "", settings, log)
        mf, method_kind = _mean_field(mol, calculation.method, settings)
        use_gpu = gpu_available() if settings.use_gpu is None else settings.use_gpu
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
                "settings": dict(calculation.settings),
                "density_fit": settings.density_fit,
                "n_basis": int(mol.nao_nr()),
                "scf_cycles": int(getattr(mf, "cycles", -1)),
                "device": "gpu" if use_gpu else "cpu",
                "threads": int(lib.num_threads()),
            },
        )


@contextlib.contextmanager
def _log_file(path: str | None) -> Iterator[tuple[TextIO, Path]]:
    """The log PySCF writes to: ``path`` (appended, line-buffered) or a scratch file."""
    if path is not None:
        with open(path, "a", buffering=1) as log:
            yield log, Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="interphase-pyscf-") as scratch:
        scratch_log = Path(scratch) / "pyscf.log"
        with scratch_log.open("w", buffering=1) as log:
            yield log, scratch_log


def _molecule(structure: StructureRecord, basis: str, settings: PySCFSettings, log: TextIO) -> Any:
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
    mol.max_memory = settings.max_memory_mb
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


def _mean_field(mol: Any, method: str, settings: PySCFSettings) -> tuple[Any, str]:
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
        mf.grids.level = settings.grid_level
        kind = "UKS" if open_shell else "RKS"
    mf.conv_tol = settings.conv_tol_hartree
    mf.max_cycle = settings.max_iterations
    mf.damp = settings.damping
    mf.level_shift = settings.level_shift_hartree
    if settings.density_fit:
        auxbasis = settings.auxbasis
        mf = mf.density_fit(auxbasis=auxbasis) if auxbasis else mf.density_fit()
    return mf, kind


def _to_numpy(value: Any) -> Any:
    return value.get() if hasattr(value, "get") and not isinstance(value, dict) else value
