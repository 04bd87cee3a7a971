"""Parity data of a training run: predicted against reference, per head, from its ``.npz``.

The trainer writes the best model's predictions on both splits to the file
named by ``training_run.metrics["parity_path"]`` (keys ``split/head/...``, see
:func:`interphase.training.metrics.write_parity`). Energies are shown per atom
in eV, forces (minus the gradient) per Cartesian component in eV/Å.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interphase.units import HARTREE_TO_EV

#: Most points drawn per series (a parity plot of 10^6 force components is unreadable anyway).
MAX_POINTS = 2000
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class ParitySeries:
    """Reference and predicted values of one split (and kind) of one head."""

    name: str  # e.g. "validation" or "train (synthetic)"
    reference: list[float]
    predicted: list[float]
    n_total: int  # before thinning to MAX_POINTS


@dataclass(frozen=True)
class HeadParity:
    head: str
    energy_ev_per_atom: list[ParitySeries] = field(default_factory=list)
    force_ev_per_angstrom: list[ParitySeries] = field(default_factory=list)


@dataclass(frozen=True)
class Parity:
    """Parity data of one run, or why there is none."""

    heads: list[HeadParity]
    missing: str | None = None  # a note for the page when the file is absent


def run_parity(metrics: dict[str, Any] | None, heads: list[str]) -> Parity:
    """The parity data a finished run stored (``metrics["parity_path"]``)."""
    path_text = (metrics or {}).get("parity_path")
    if not path_text:
        return Parity([], "written when the run finishes")
    path = Path(path_text)
    if not path.is_file():
        return Parity([], f"the parity file {path} is not on this machine")
    with np.load(path) as arrays:
        data = {key: arrays[key] for key in arrays.files}
    return Parity([_head(data, head) for head in heads])


def _thin(reference: np.ndarray, predicted: np.ndarray) -> tuple[list[float], list[float]]:
    """At most :data:`MAX_POINTS` evenly spaced points (the same ones of both arrays)."""
    if len(reference) > MAX_POINTS:
        keep = np.linspace(0, len(reference) - 1, MAX_POINTS).astype(int)
        reference, predicted = reference[keep], predicted[keep]
    # Six significant figures: the page carries half the bytes, the plot looks the same.
    return [float(f"{v:.6g}") for v in reference], [float(f"{v:.6g}") for v in predicted]


def _head(data: dict[str, np.ndarray], head: str) -> HeadParity:
    parity = HeadParity(head)
    for split in SPLITS:
        for kind, label in (("energy", split), ("synthetic", f"{split} (synthetic)")):
            prefix = f"{split}/{head}/{kind}"
            n_atoms = data.get(f"{prefix}_n_atoms")
            if n_atoms is None or len(n_atoms) == 0:
                continue
            scale = HARTREE_TO_EV / n_atoms
            reference = data[f"{prefix}_reference_hartree"] * scale
            predicted = data[f"{prefix}_predicted_hartree"] * scale
            ref, pred = _thin(reference, predicted)
            parity.energy_ev_per_atom.append(ParitySeries(label, ref, pred, len(reference)))
        gradient = data.get(f"{split}/{head}/gradient_reference_hartree_per_angstrom")
        if gradient is None or len(gradient) == 0:
            continue
        predicted_gradient = data[f"{split}/{head}/gradient_predicted_hartree_per_angstrom"]
        reference = -gradient.reshape(-1) * HARTREE_TO_EV
        predicted = -predicted_gradient.reshape(-1) * HARTREE_TO_EV
        ref, pred = _thin(reference, predicted)
        parity.force_ev_per_angstrom.append(ParitySeries(split, ref, pred, len(reference)))
    return parity
