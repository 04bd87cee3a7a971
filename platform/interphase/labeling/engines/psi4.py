"""Psi4 as a separate process, driven by QCSchema JSON.

Psi4 1.3.x takes ``psi4 --json FILE``; 1.4 and later ``psi4 --qcschema FILE``.
Both write the result back into FILE. The version is read from
``psi4 --version`` once per process.

The paper's settings for the hybrid level (Psi4 1.6) are applied where the
installed version has them; every one it lacks is recorded in the label's
provenance under ``settings_not_applied`` with the reason, so a label never
claims settings it did not get.

Units: QCSchema geometry is in Bohr and gradients in Hartree/Bohr; dipoles are
in Debye before Psi4 1.4 and in e·Bohr from 1.4 on. All are converted to Å,
Hartree/Å and e·Å here.

Settings: :class:`Psi4Settings`. The program's output goes to the calculation's
log (the isolated runner's), so a killed run keeps its tail too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from ase.units import Bohr  # Å per Bohr
from pydantic import Field

from interphase.labeling.engines.contract import (
    Availability,
    Calculation,
    Capabilities,
    EngineCrashed,
    EngineError,
    EngineUnavailable,
    InvalidInput,
    LabelingEngine,
    SCFNotConverged,
)
from interphase.labeling.engines.settings import EngineSettings
from interphase.labeling.logtail import tail_of_file, tail_of_text
from interphase.records import LabelRecord, StructureRecord

DEBYE_E_ANGSTROM = 0.20819433622621247  # 1 D in e·Å
INSTALL_HINT = "install Psi4 (Debian: apt-get install psi4; or conda install psi4 -c conda-forge)"

#: The paper's hybrid-level keywords and the first Psi4 version that has each.
PAPER_KEYWORDS: dict[str, tuple[Any, tuple[int, int]]] = {
    "dft_basis_tolerance": (1e-10, (1, 0)),
    "ints_tolerance": (1e-10, (1, 0)),
    "dft_pruning_scheme": ("robust", (1, 4)),
    "s_orthogonalization": ("partialcholesky", (1, 4)),
    "s_cholesky_tolerance": (1e-6, (1, 4)),
}


class Psi4Settings(EngineSettings):
    """Settings of the psi4 engine (all optional)."""

    density_fit: bool = Field(default=True, description="Density fitting (scf_type df, else pk).")
    conv_tol_hartree: float = Field(
        default=1e-8, gt=0, description="SCF energy convergence (Hartree; e_convergence)."
    )
    density_convergence: float = Field(
        default=1e-8, gt=0, description="SCF density convergence (d_convergence)."
    )
    max_iterations: int | None = Field(
        default=None, ge=1, description="Maximum SCF iterations (maxiter; default Psi4's)."
    )
    damping: float | None = Field(
        default=None, ge=0, lt=1, description="SCF damping as a fraction (Psi4 takes percent)."
    )
    level_shift_hartree: float | None = Field(
        default=None, ge=0, description="Level shift (Hartree; Psi4 >= 1.4)."
    )
    threads: int = Field(default=1, ge=1, description="Threads of the psi4 process (-n).")
    keywords: dict[str, Any] = Field(
        default_factory=dict, description="Raw Psi4 keywords, applied last."
    )


@cache
def psi4_version(executable: str) -> str:
    """``psi4 --version`` of ``executable`` (e.g. ``1.3.2``)."""
    # Psi4 writes timer.dat into its working directory even for --version.
    with tempfile.TemporaryDirectory(prefix="interphase-psi4-") as scratch:
        result = subprocess.run(
            [executable, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=scratch,
        )
    if result.returncode != 0:
        raise EngineUnavailable(
            f"{executable} --version failed ({result.returncode}): {result.stderr[-500:]}"
        )
    return result.stdout.strip().splitlines()[-1].strip()


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a Psi4 version string like ``1.3.2`` or ``1.9a1.dev5``."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise EngineUnavailable(f"cannot read the Psi4 version from {version!r}")
    return int(match.group(1)), int(match.group(2))


class Psi4Engine(LabelingEngine):
    """Gaussian-basis HF/DFT with Psi4 in its own process (QCSchema in, QCSchema out)."""

    name = "psi4"
    settings_model = Psi4Settings
    capabilities = Capabilities(periodic=False, gradients=True, charges=False, dipole=True)
    isolate = True
    scf_rescue_steps = (
        {"damping": 0.5, "max_iterations": 200},
        {"damping": 0.7, "max_iterations": 400},
    )

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or os.environ.get("INTERPHASE_PSI4", "psi4")

    def _path(self) -> str | None:
        return shutil.which(self.executable)

    def available(self) -> Availability:
        if self._path() is None:
            return Availability(False, f"no {self.executable!r} on PATH; {INSTALL_HINT}")
        return Availability(True)

    def version(self) -> str:
        path = self._path()
        if path is None:
            raise EngineUnavailable(f"no {self.executable!r} on PATH; {INSTALL_HINT}")
        return psi4_version(path)

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        self.check(structure)
        settings = self.parse_settings(calculation.settings)
        if not calculation.basis:
            raise InvalidInput("psi4 needs a basis set (e.g. def2-SVP)")
        version = self.version()
        keywords, not_applied = psi4_keywords(calculation.settings, version_tuple(version))
        schema = qcschema_input(structure, calculation, keywords)
        with tempfile.TemporaryDirectory(prefix="interphase-psi4-") as scratch:
            log_path = Path(calculation.log_path or Path(scratch) / "psi4.log")
            output = self._execute(schema, Path(scratch), version, settings.threads, log_path)
        return self._parse(output, structure, calculation, version, keywords, not_applied)

    def _execute(
        self, schema: dict[str, Any], scratch: Path, version: str, threads: int, log_path: Path
    ) -> dict[str, Any]:
        path = scratch / "input.json"
        path.write_text(json.dumps(schema))
        flag = "--json" if version_tuple(version) < (1, 4) else "--qcschema"
        command = [self.executable_path(), flag, str(path), "-n", str(threads)]
        env = {**os.environ, "PSI_SCRATCH": str(scratch)}
        # Output straight into the log: a run killed for its time limit keeps its tail.
        with open(log_path, "ab") as log_file:
            result = subprocess.run(
                command, cwd=scratch, env=env, stdout=log_file, stderr=log_file, check=False
            )
        log = tail_of_file(log_path) or ""
        if result.returncode < 0:
            raise EngineCrashed(f"psi4 was killed by signal {-result.returncode}", log_tail=log)
        try:
            output: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise EngineCrashed(
                f"psi4 exited with {result.returncode} and left no readable result: {error}",
                log_tail=log,
            ) from error
        if not output.get("success"):
            raise _classify_failure(output, log)
        return output

    def executable_path(self) -> str:
        path = self._path()
        if path is None:
            raise EngineUnavailable(f"no {self.executable!r} on PATH; {INSTALL_HINT}")
        return path

    def _parse(
        self,
        output: dict[str, Any],
        structure: StructureRecord,
        calculation: Calculation,
        version: str,
        keywords: dict[str, Any],
        not_applied: dict[str, str],
    ) -> LabelRecord:
        properties = output.get("properties", {})
        gradient = np.asarray(output["return_result"], dtype=float).reshape(-1, 3) / Bohr
        dipole = _dipole_e_angstrom(properties, version)
        return LabelRecord(
            level=calculation.method,
            total_energy_hartree=float(properties["return_energy"]),
            gradient_hartree_per_angstrom=gradient,
            dipole_e_angstrom=dipole,
            provenance={
                "engine": self.name,
                "engine_version": version,
                "method": calculation.method,
                "basis": calculation.basis,
                "settings": dict(calculation.settings),
                "keywords": keywords,
                "settings_not_applied": not_applied,
                "n_basis": properties.get("calcinfo_nbasis"),
                "scf_iterations": properties.get("scf_iterations"),
            },
        )


def psi4_keywords(
    settings: dict[str, Any], version: tuple[int, int]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Psi4 keywords for ``settings`` and the paper defaults, plus what was not applied.

    Returns
    -------
    keywords, not_applied
        ``not_applied`` maps each skipped setting to the reason (version too old).
    """
    keywords: dict[str, Any] = {
        "scf_type": "df" if settings.get("density_fit", True) else "pk",
        "e_convergence": float(settings.get("conv_tol_hartree", 1e-8)),
        "d_convergence": float(settings.get("density_convergence", 1e-8)),
    }
    not_applied: dict[str, str] = {}
    wanted: dict[str, tuple[Any, tuple[int, int]]] = dict(PAPER_KEYWORDS)
    if "max_iterations" in settings:
        keywords["maxiter"] = int(settings["max_iterations"])
    if "damping" in settings:
        keywords["damping_percentage"] = 100.0 * float(settings["damping"])
    if "level_shift_hartree" in settings:
        wanted["level_shift"] = (float(settings["level_shift_hartree"]), (1, 4))
    for key, (value, since) in wanted.items():
        if version >= since:
            keywords[key] = value
        else:
            not_applied[key] = (
                f"needs Psi4 >= {since[0]}.{since[1]}; installed {version[0]}.{version[1]}"
            )
    keywords.update(settings.get("keywords", {}))
    return keywords, not_applied


def qcschema_input(
    structure: StructureRecord, calculation: Calculation, keywords: dict[str, Any]
) -> dict[str, Any]:
    """A QCSchema ``AtomicInput`` (gradient driver) for one structure, geometry in Bohr."""
    return {
        "schema_name": "qcschema_input",
        "schema_version": 1,
        "molecule": {
            "schema_name": "qcschema_molecule",
            "schema_version": 2,
            "symbols": structure.symbols,
            "geometry": (np.asarray(structure.positions_angstrom, dtype=float) / Bohr)
            .ravel()
            .tolist(),
            "molecular_charge": int(structure.charge),
            "molecular_multiplicity": int(structure.multiplicity),
            "fix_com": True,
            "fix_orientation": True,
        },
        "driver": "gradient",
        "model": {"method": calculation.method.lower(), "basis": calculation.basis},
        "keywords": {
            **keywords,
            "reference": "rhf" if structure.multiplicity == 1 else "uhf",
        },
        "extras": {},
    }


def _dipole_e_angstrom(properties: dict[str, Any], version: str) -> np.ndarray | None:
    for key in ("scf_dipole_moment", "current_dipole_moment"):
        if properties.get(key) is not None:
            value = np.asarray(properties[key], dtype=float)
            if version_tuple(version) < (1, 4):
                return value * DEBYE_E_ANGSTROM
            return value * Bohr
    return None


def _classify_failure(output: dict[str, Any], log: str) -> EngineError:
    error = output.get("error") or {}
    message = str(error.get("error_message", "psi4 reported failure without a message"))
    kind = str(error.get("error_type", ""))
    tail = tail_of_text(str(output.get("raw_output") or "") + log) or tail_of_text(message)
    summary = f"psi4 {kind}: {message.strip().splitlines()[-1] if message.strip() else ''}"
    lowered = message.lower()
    if "converge" in lowered:
        return SCFNotConverged(summary, log_tail=tail)
    if "dftd3" in lowered or "executable" in lowered:
        return EngineUnavailable(summary, log_tail=tail)
    if any(
        word in lowered
        for word in ("basis", "not recognized", "unknown", "validation", "option", "functional")
    ):
        return InvalidInput(summary, log_tail=tail)
    return EngineCrashed(summary, log_tail=tail)
