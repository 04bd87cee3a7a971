"""Analytic potentials from ASE as a labeling engine: cheap references for tests and teaching.

``EMT`` is ASE's effective-medium theory (Al, Cu, Ag, Au, Ni, Pd, Pt, and
rough H, C, N, O); ``LJ`` is a Lennard-Jones pair potential with one
``epsilon_ev``/``sigma_angstrom`` for every pair. Both run in microseconds, so
a test can train a head on them and validate it against the same potential
(phonons, elastic constants, an equation of state) in seconds. ASE works in eV
and eV/Å; the label is converted to Hartree and Hartree/Å here.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np
from ase import Atoms
from ase.units import Hartree  # eV per Hartree
from pydantic import Field

from interphase.labeling.engines.contract import (
    Availability,
    Calculation,
    Capabilities,
    InvalidInput,
    LabelingEngine,
)
from interphase.labeling.engines.settings import EngineSettings
from interphase.records import LabelRecord, StructureRecord

METHODS = ("EMT", "LJ")
#: Elements ASE's EMT has parameters for.
EMT_ELEMENTS = frozenset({1, 6, 7, 8, 13, 28, 29, 46, 47, 78, 79})


class AnalyticSettings(EngineSettings):
    """Settings of the analytic engine (LJ only; EMT has none)."""

    epsilon_ev: float = Field(default=0.01, gt=0, le=100, description="LJ well depth (eV).")
    sigma_angstrom: float = Field(
        default=2.5, gt=0, le=20, description="LJ zero-crossing distance (Å)."
    )
    cutoff_angstrom: float = Field(
        default=7.5, gt=0, le=50, description="LJ cutoff (Å); the energy is shifted to 0 there."
    )


class AnalyticEngine(LabelingEngine):
    """ASE's EMT and Lennard-Jones: no electrons, microseconds per structure."""

    name = "analytic"
    settings_model = AnalyticSettings
    capabilities = Capabilities(periodic=True, gradients=True)

    def available(self) -> Availability:
        return Availability(True)

    def version(self) -> str:
        return f"ase {metadata.version('ase')}"

    def compute(self, structure: StructureRecord, calculation: Calculation) -> LabelRecord:
        self.check(structure)
        settings = self.parse_settings(calculation.settings)
        atoms = Atoms(
            numbers=structure.numbers,
            positions=structure.positions_angstrom,
            cell=structure.cell_angstrom if structure.is_periodic else None,
            pbc=structure.pbc,
        )
        if calculation.method == "EMT":
            from ase.calculators.emt import EMT

            unknown = sorted(set(int(z) for z in structure.numbers) - EMT_ELEMENTS)
            if unknown:
                raise InvalidInput(f"EMT has no parameters for atomic numbers {unknown}")
            atoms.calc = EMT()
        elif calculation.method == "LJ":
            from ase.calculators.lj import LennardJones

            atoms.calc = LennardJones(
                epsilon=settings.epsilon_ev,
                sigma=settings.sigma_angstrom,
                rc=settings.cutoff_angstrom,
                smooth=True,
            )
        else:
            raise InvalidInput(
                f"the analytic engine has no method {calculation.method!r}; "
                f"choose one of {', '.join(METHODS)}"
            )
        energy_ev = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=float)
        return LabelRecord(
            level=calculation.method,
            total_energy_hartree=energy_ev / Hartree,
            gradient_hartree_per_angstrom=-forces / Hartree,
            provenance={
                "engine": self.name,
                "engine_version": self.version(),
                "method": calculation.method,
                "settings": dict(calculation.settings),
            },
        )
