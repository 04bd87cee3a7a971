"""The geometry driver of the AFIR and MD recipes: GFN2-xTB through the tblite engine."""

from __future__ import annotations

from interphase.labeling.ase_calculator import EngineCalculator, xtb_calculator
from interphase.records import StructureRecord
from interphase.structures.config import DriverSettings


def driver_calculator(record: StructureRecord, driver: DriverSettings) -> EngineCalculator:
    """The tblite engine harness as an ASE calculator for ``record``'s charge and spin."""
    return xtb_calculator(
        charge=record.charge,
        multiplicity=record.multiplicity,
        method=driver.method,
        electronic_temperature_k=driver.electronic_temperature_k,
        fallback_settings=driver.fallback_settings,
    )
