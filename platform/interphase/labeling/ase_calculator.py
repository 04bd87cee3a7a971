"""Any labeling engine as an ASE calculator (for AFIR, MD and relaxations).

Structure generators drive geometry optimisers and molecular dynamics through
ASE; this adapter makes them use the *same* engine harness that labels
structures (one GFN2-xTB implementation, not tblite's own ASE calculator).
ASE works in eV and eV/Å; engines return Hartree and Hartree/Å gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Hartree  # eV per Hartree

from interphase.labeling.engines.contract import Calculation, LabelingEngine, SCFNotConverged
from interphase.records import LabelRecord, StructureRecord


class EngineCalculator(Calculator):  # type: ignore[misc]
    """ASE calculator that runs one :class:`LabelingEngine` single point per geometry.

    Parameters
    ----------
    engine
        The engine harness, e.g. ``TBLiteEngine()``.
    calculation
        Method, basis and settings, e.g. ``Calculation("GFN2-xTB")``.
    charge
        Total charge of the system (e).
    multiplicity
        Spin multiplicity 2S + 1.
    fallback_settings
        Settings merged over ``calculation.settings`` and tried in turn when
        the SCF does not converge (e.g. more iterations, stronger damping,
        more smearing); the last failure is raised.

    Notes
    -----
    Results: ``energy`` (eV), ``forces`` (eV/Å, = -gradient), and ``charges``
    (e) when the engine returns them. The last engine label (Hartree units) is
    kept in :attr:`last_label`.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "charges"]  # type: ignore[misc]

    def __init__(
        self,
        engine: LabelingEngine,
        calculation: Calculation,
        *,
        charge: int = 0,
        multiplicity: int = 1,
        fallback_settings: Sequence[dict[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fallback_settings = [dict(s) for s in fallback_settings]
        self.engine = engine
        self.calculation = calculation
        self.charge = int(charge)
        self.multiplicity = int(multiplicity)
        self.last_label: LabelRecord | None = None

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        assert self.atoms is not None  # set by Calculator.calculate
        record = StructureRecord.from_atoms(
            self.atoms, charge=self.charge, multiplicity=self.multiplicity
        )
        label = self._compute(record)
        self.last_label = label
        if label.total_energy_hartree is None or label.gradient_hartree_per_angstrom is None:
            raise ValueError(
                f"engine {self.engine.name!r} returned no energy or gradient for"
                f" {self.calculation.method}; an ASE calculator needs both"
            )
        energy_ev = label.total_energy_hartree * Hartree
        self.results = {
            "energy": energy_ev,
            "free_energy": energy_ev,
            "forces": -np.asarray(label.gradient_hartree_per_angstrom) * Hartree,
        }
        if label.charges_e is not None:
            self.results["charges"] = np.asarray(label.charges_e)

    def _compute(self, record: StructureRecord) -> LabelRecord:
        try:
            return self.engine.compute(record, self.calculation)
        except SCFNotConverged:
            if not self.fallback_settings:
                raise
        for index, extra in enumerate(self.fallback_settings):
            calculation = replace(self.calculation, settings={**self.calculation.settings, **extra})
            try:
                return self.engine.compute(record, calculation)
            except SCFNotConverged:
                if index == len(self.fallback_settings) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def xtb_calculator(
    *,
    charge: int = 0,
    multiplicity: int = 1,
    method: str = "GFN2-xTB",
    fallback_settings: Sequence[dict[str, Any]] = (),
    **settings: Any,
) -> EngineCalculator:
    """GFN2-xTB (tblite engine harness) as an ASE calculator (see :class:`EngineCalculator`)."""
    from interphase.labeling.engines.tblite import TBLiteEngine

    return EngineCalculator(
        TBLiteEngine(),
        Calculation(method, settings=settings),
        charge=charge,
        multiplicity=multiplicity,
        fallback_settings=fallback_settings,
    )
