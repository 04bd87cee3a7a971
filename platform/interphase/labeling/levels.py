"""Levels of theory as configuration.

A level's ``name`` is the dataset label key (``wB97X-D3BJ_def2-TZVPD``,
``PBE-D3``, ``GFN2-xTB``); the engine, method, basis and settings say how to
compute it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interphase.db.levels import DEFAULT_LEVEL_ROWS
from interphase.labeling.job_settings import validate_job_settings


class LevelSpec(BaseModel):
    """How to compute one level of theory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Dataset label key of the level, e.g. 'PBE-D3'.")
    engine: str = Field(description="Labeling engine: tblite, psi4, pyscf or gpaw.")
    method: str = Field(description="Method name as the engine spells it, e.g. 'GFN2-xTB'.")
    basis: str | None = Field(default=None, description="Basis set; None for xTB/plane waves.")
    periodic: bool = Field(default=False, description="Whether the level treats periodic cells.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Engine settings applied to every job at this level."
    )
    reference_energies_hartree: dict[str, float] = Field(
        default_factory=dict,
        description="Per-element reference energies (Hartree) subtracted from the total "
        "energy to give the atomization energy; elements missing here leave it unset.",
    )

    @model_validator(mode="after")
    def _settings_fit_the_engine(self) -> LevelSpec:
        """The level's settings are job settings of its engine (refused here, not at run time)."""
        object.__setattr__(self, "settings", validate_job_settings(self.engine, self.settings))
        return self


def atomization_energy(
    total_energy_hartree: float, symbols: Sequence[str], references_hartree: Mapping[str, float]
) -> float | None:
    """Total energy minus the per-element reference energies of the level (Hartree).

    Returns None when any element of ``symbols`` has no reference energy, so a
    label never carries an atomization energy made from a partial set.
    """
    if not references_hartree or any(s not in references_hartree for s in symbols):
        return None
    return float(total_energy_hartree - sum(float(references_hartree[s]) for s in symbols))


#: The defaults of DESIGN.md (stated once, as the database's default rows), validated;
#: a campaign configuration may override them.
DEFAULT_LEVELS: dict[str, LevelSpec] = {
    name: LevelSpec(**row) for name, row in DEFAULT_LEVEL_ROWS.items()
}
