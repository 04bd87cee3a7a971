"""GFN2-xTB (and GFN1-xTB) through tblite's Python API.

tblite works in atomic units: positions and lattice in Bohr, energy in
Hartree, gradient in Hartree/Bohr, dipole in e·Bohr. Everything is converted
at this boundary to interphase's Å-based units.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
from ase.units import Bohr  # Å per Bohr
from pydantic import Field

from interphase.labeling.engines.contract import (
    Availability,
    Calculation,
    Capabilities,
    EngineCrashed,
    InvalidInput,
    LabelingEngine,
    SCFNotConverged,
)
from interphase.labeling.engines.settings import EngineSettings
from interphase.records import LabelRecord, StructureRecord

METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")
KB_HARTREE_PER_K = 3.166808578545117e-6  # Boltzmann constant; tblite wants Hartree


class TBLiteSettings(EngineSettings):
    """Settings of the tblite engine (all optional)."""

    max_iterations: int = Field(default=250, ge=1, description="Maximum SCF iterations.")
    accuracy: float = Field(
        default=1.0, gt=0, description="tblite accuracy factor (smaller is tighter)."
    )
    mixer_damping: float = Field(
        default=0.4, gt=0, le=1, description="Damping of tblite's Broyden density mixer."
    )
    electronic_temperature_k: float = Field(
        default=300.0,
        ge=0,
        description="Electronic temperature (K) of the Fermi smearing of the occupations.",
    )


class TBLiteEngine(LabelingEngine):
    """Extended tight binding; milliseconds per small molecule."""

    name = "tblite"
    settings_model = TBLiteSettings
    capabilities = Capabilities(periodic=True, gradients=True, charges=True, dipole=True)
    # Retries of a non-converged SCF smear the occupations (the attempt's settings
    # record it) rather than iterate longer: tblite's Broyden history grows with
    # max-iter, so 500 iterations cost ~10x and 1000 ~100x what 250 do, and on the
    # small metallic Li clusters that fail, 3000-5000 K converges in milliseconds.
    scf_rescue_steps = (
        {"mixer_damping": 0.2, "electronic_temperature_k": 3000.0},
        {"mixer_damping": 0.2, "electronic_temperature_k": 5000.0},
    )

    def preload(self) -> None:
        import tblite.interface  # noqa: F401

    def available(self) -> Availability:
        try:
            import tblite.interface  # noqa: F401
        except ImportError as error:
            return Availability(False, f"tblite is not importable ({error}); pip install tblite")
        return Availability(True)

    def version(self) -> str:
        return metadata.version("tblite")

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        from tblite.exceptions import TBLiteTypeError, TBLiteValueError
        from tblite.interface import Calculator

        self.check(structure)
        if calculation.method not in METHODS:
            raise InvalidInput(
                f"tblite has no method {calculation.method!r}; choose one of {', '.join(METHODS)}"
            )
        settings = self.parse_settings(calculation.settings)
        n_unpaired = structure.multiplicity - 1
        try:
            calculator = Calculator(
                calculation.method,
                np.asarray(structure.numbers, dtype=int),
                np.asarray(structure.positions_angstrom, dtype=float) / Bohr,
                charge=float(structure.charge),
                uhf=n_unpaired,
                lattice=None
                if not structure.is_periodic
                else np.asarray(structure.cell_angstrom, dtype=float) / Bohr,
                periodic=np.asarray(structure.pbc) if structure.is_periodic else None,
            )
            calculator.set("verbosity", 0)
            calculator.set("max-iter", settings.max_iterations)
            calculator.set("accuracy", settings.accuracy)
            calculator.set("mixer-damping", settings.mixer_damping)
            calculator.set("temperature", settings.electronic_temperature_k * KB_HARTREE_PER_K)
            result = calculator.singlepoint()
        except (TBLiteValueError, TBLiteTypeError) as error:
            raise InvalidInput(f"tblite refused the input: {error}") from error
        except RuntimeError as error:
            message = str(error)
            if "converge" in message.lower():
                raise SCFNotConverged(f"tblite SCF did not converge: {message}") from error
            raise EngineCrashed(f"tblite failed: {message}") from error
        return LabelRecord(
            level=calculation.method,
            total_energy_hartree=float(result.get("energy")),
            gradient_hartree_per_angstrom=np.asarray(result.get("gradient")) / Bohr,
            charges_e=np.asarray(result.get("charges")),
            dipole_e_angstrom=np.asarray(result.get("dipole")) * Bohr,
            provenance={
                "engine": self.name,
                "engine_version": self.version(),
                "method": calculation.method,
                "settings": dict(calculation.settings),
            },
        )
