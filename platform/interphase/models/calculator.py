"""ASE calculator over a trained multi-head potential (one head = one level of theory).

The model works in Hartree and Å with gradients dE/dx; ASE wants eV, eV/Å forces
(−dE/dx) and eV/Å³ stress. Conversions use ``ase.units``. Evaluation goes through
:class:`interphase.models.inference.InferenceSession` (the fast path by default).

Example
-------
>>> atoms.calc = InterphaseCalculator("model.pt", head="PBE-D3")  # doctest: +SKIP
>>> atoms.get_forces()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from interphase.models.inference import InferenceSession, load_for_inference
from interphase.models.multihead import MultiHeadPotential
from interphase.units import HARTREE_TO_EV


class InterphaseCalculator(Calculator):
    """ASE calculator for one head of a :class:`MultiHeadPotential`.

    Parameters
    ----------
    model_or_path
        A model, or the path of an artifact written by ``save_model`` (read with
        ``weights_only=True``).
    head
        Level of theory to predict, one of ``model.heads``.
    device
        ``"cuda"``, ``"cpu"``, … ; default CUDA when available, else CPU.
    dtype
        Evaluation precision; default the model's own (float64). ``torch.float32``
        is faster; total energies of large systems then carry ~1e-3 Hartree rounding.
    fast
        Use the fast inference path (Verlet neighbour list, frozen on-device model
        copy, one-entry cache; see :mod:`interphase.models.inference`); ``False``
        evaluates through :func:`interphase.models.multihead.evaluate_structure` on
        every call.
    total_charge
        Total charge (e) the charge model distributes; default ``atoms.info["charge"]``
        if set, else 0.

    Raises
    ------
    UnknownHeadError
        ``head`` is not one of the model's heads.
    UnknownElementError
        (at calculation time) the structure holds an element the model has not seen.
    """

    #: Stress only for structures periodic in all three directions; charges only
    #: for models with a charge network (see ``__init__``).
    implemented_properties: list[str] = [  # noqa: RUF012 (ASE's own declaration)
        "energy",
        "free_energy",
        "forces",
        "stress",
        "charges",
    ]

    def __init__(
        self,
        model_or_path: MultiHeadPotential | str | Path,
        head: str,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        fast: bool = True,
        total_charge: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        model = load_for_inference(model_or_path)
        self.session = InferenceSession(model, head, device=device, dtype=dtype, fast=fast)
        self.head = head
        self.total_charge = total_charge
        # Instance-level: charges only where the model has a charge network.
        properties = ["energy", "free_energy", "forces", "stress"]
        if self.session.has_charges:
            properties.append("charges")
        self.implemented_properties = properties

    @property
    def model(self) -> MultiHeadPotential:
        return self.session.model

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        assert self.atoms is not None  # set by Calculator.calculate
        want_stress = "stress" in (properties or [])
        result = self.session.evaluate(
            self.atoms.numbers,
            self.atoms.positions,
            np.asarray(self.atoms.cell[:]),
            tuple(bool(p) for p in self.atoms.pbc),
            total_charge=self._total_charge(self.atoms),
            stress=want_stress,
        )
        energy_ev = result.energy_hartree * HARTREE_TO_EV
        self.results = {
            "energy": energy_ev,
            "free_energy": energy_ev,
            "forces": -result.gradient_hartree_per_angstrom * HARTREE_TO_EV,
        }
        if result.charges_e is not None:
            self.results["charges"] = np.asarray(result.charges_e, dtype=float)
        if result.stress_hartree_per_angstrom3 is not None:
            self.results["stress"] = _voigt(result.stress_hartree_per_angstrom3 * HARTREE_TO_EV)

    def _total_charge(self, atoms: Atoms) -> float:
        if self.total_charge is not None:
            return float(self.total_charge)
        return float(atoms.info.get("charge", 0.0))


def _voigt(stress: np.ndarray) -> np.ndarray:
    """(3, 3) stress to ASE's Voigt order xx, yy, zz, yz, xz, xy."""
    return np.array(
        [stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2], stress[0, 1]]
    )
