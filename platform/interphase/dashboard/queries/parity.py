"""Parity data of a training run: predicted against reference, per head, from its ``.npz`` files.

The trainer writes the best model's predictions on the train and validation
splits to ``training_run.metrics["parity_path"]``; a campaign's evaluate step
writes them on the held-out test split to ``metrics["test_parity_path"]``
(keys ``split/head/...``, see :func:`interphase.training.metrics.write_parity`).

Energies are shown relative to a per-element reference, (E − Σ_Z n_Z μ_Z) / N
in meV/atom, with μ_Z fitted by least squares to the head's reference energies
of all splits: absolute energies per atom of different compositions lie tens
of eV apart, which hides errors of tens of meV. Forces (minus the gradient)
are shown per Cartesian component in eV/Å.

Plotly draws the points as SVG (its WebGL scatter needs ``eval``, which the
page's Content-Security-Policy forbids), so long series are thinned: the
largest errors are always kept, and an even sample of the rest.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db.models import Structure
from interphase.units import HARTREE_TO_EV, HARTREE_TO_MEV

#: Most points drawn per series: SVG stays responsive with a few such series per chart.
MAX_POINTS = 1500
#: Of those, the points with the largest |predicted − reference|, kept whatever the sample.
LARGEST_ERRORS = 300
#: Splits in drawing order (the held-out test split on top), with their legend names.
SPLITS = {"train": "train", "validation": "validation", "test": "test (held out)"}
#: Decimals drawn: µeV/atom of energies in meV/atom, 0.01 meV/Å of forces in eV/Å.
ENERGY_DECIMALS = 3
FORCE_DECIMALS = 5
#: Structure ids per database query (well under SQLite's bound-parameter limit).
ID_CHUNK = 5000


class EnergyReference(StrEnum):
    """What the energies of a head are shown relative to."""

    per_element = "per_element"  # Σ_Z n_Z μ_Z, fitted
    mean_per_atom = "mean_per_atom"  # the mean reference energy per atom (compositions unknown)


#: The energy axes' quantity (after "reference " or "predicted ").
ENERGY_QUANTITY = {
    EnergyReference.per_element: "energy relative to per-element reference (meV/atom)",
    EnergyReference.mean_per_atom: "energy per atom relative to its mean (meV/atom)",
}


@dataclass(frozen=True)
class ParitySeries:
    """Reference and predicted values of one split (and kind) of one head, thinned."""

    name: str  # e.g. "validation", "train (synthetic)" or "test (held out)"
    reference: list[float]
    predicted: list[float]
    n_total: int  # before thinning

    @property
    def thinned(self) -> bool:
        return len(self.reference) < self.n_total


@dataclass(frozen=True)
class HeadParity:
    head: str
    energy_mev_per_atom: list[ParitySeries] = field(default_factory=list)
    force_ev_per_angstrom: list[ParitySeries] = field(default_factory=list)
    energy_reference: EnergyReference = EnergyReference.per_element
    notes: list[str] = field(default_factory=list)  # fallbacks and thinning, for the page

    @property
    def energy_quantity(self) -> str:
        """The energy axes' quantity and unit."""
        return ENERGY_QUANTITY[self.energy_reference]


@dataclass(frozen=True)
class Parity:
    """Parity data of one run, or why there is none."""

    heads: list[HeadParity]
    missing: str | None = None  # a note for the page when the file is absent


def run_parity(session: Session, metrics: dict[str, Any] | None, heads: list[str]) -> Parity:
    """The parity data a finished run stored (``parity_path``, and ``test_parity_path``)."""
    metrics = metrics or {}
    path_text = metrics.get("parity_path")
    if not path_text:
        return Parity([], "written when the run finishes")
    path = Path(path_text)
    if not path.is_file():
        return Parity([], f"the parity file {path} is not on this machine")
    data = _load(path)
    notes = []
    test_path = metrics.get("test_parity_path")
    if test_path and Path(test_path).is_file():
        data.update(_load(Path(test_path)))  # keys "test/head/..."
    elif test_path:
        notes.append(f"the test split's parity file {test_path} is not on this machine")
    return Parity([_head(session, data, head, list(notes)) for head in heads])


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def thin_indices(
    reference: np.ndarray,
    predicted: np.ndarray,
    *,
    cap: int = MAX_POINTS,
    largest: int = LARGEST_ERRORS,
) -> np.ndarray:
    """Indices of at most ``cap`` points: the ``largest`` largest errors and an even sample.

    The sample of the other points comes first and the largest errors last,
    so that they are drawn on top.
    """
    n = len(reference)
    if n <= cap:
        return np.arange(n)
    largest = min(largest, cap)
    order = np.argsort(np.abs(predicted - reference), kind="stable")
    worst = order[n - largest :]
    rest = np.sort(order[: n - largest])
    sample = rest[np.linspace(0, len(rest) - 1, cap - largest).astype(int)]
    return np.concatenate([sample, worst])


def _series(name: str, reference: np.ndarray, predicted: np.ndarray, decimals: int) -> ParitySeries:
    keep = thin_indices(reference, predicted)
    # Rounded to well below any error worth seeing: the page carries half the bytes.
    return ParitySeries(
        name,
        np.round(reference[keep], decimals).tolist(),
        np.round(predicted[keep], decimals).tolist(),
        len(reference),
    )


@dataclass(frozen=True)
class _EnergyBlock:
    """The energies of one split and kind of one head, as stored (Hartree per structure)."""

    name: str
    kind: str  # "energy" (reference labels) or "synthetic" (GP-synthetic labels)
    structure_ids: np.ndarray  # -1 where the file has none
    n_atoms: np.ndarray
    reference_hartree: np.ndarray
    predicted_hartree: np.ndarray


def _energy_blocks(data: dict[str, np.ndarray], head: str) -> list[_EnergyBlock]:
    blocks = []
    for split, label in SPLITS.items():
        for kind, name in (("energy", label), ("synthetic", f"{split} (synthetic)")):
            prefix = f"{split}/{head}/{kind}"
            n_atoms = data.get(f"{prefix}_n_atoms")
            if n_atoms is None or len(n_atoms) == 0:
                continue
            ids = data.get(f"{prefix}_structure_id", np.full(len(n_atoms), -1))
            reference = data[f"{prefix}_reference_hartree"]
            predicted = data[f"{prefix}_predicted_hartree"]
            blocks.append(_EnergyBlock(name, kind, ids, n_atoms, reference, predicted))
    return blocks


def _head(session: Session, data: dict[str, np.ndarray], head: str, notes: list[str]) -> HeadParity:
    blocks = _energy_blocks(data, head)
    baselines, energy_reference, unknown = _baselines_hartree(session, blocks)
    notes.extend(unknown)
    parity = HeadParity(head, energy_reference=energy_reference, notes=notes)
    for block, baseline in zip(blocks, baselines, strict=True):
        scale = HARTREE_TO_MEV / block.n_atoms
        reference = (block.reference_hartree - baseline) * scale
        predicted = (block.predicted_hartree - baseline) * scale
        parity.energy_mev_per_atom.append(
            _series(block.name, reference, predicted, ENERGY_DECIMALS)
        )
    for split, label in SPLITS.items():
        gradient = data.get(f"{split}/{head}/gradient_reference_hartree_per_angstrom")
        if gradient is None or len(gradient) == 0:
            continue
        predicted_gradient = data[f"{split}/{head}/gradient_predicted_hartree_per_angstrom"]
        reference = -gradient.reshape(-1) * HARTREE_TO_EV
        predicted = -predicted_gradient.reshape(-1) * HARTREE_TO_EV
        parity.force_ev_per_angstrom.append(_series(label, reference, predicted, FORCE_DECIMALS))
    notes.extend(_thinning_notes(parity))
    return parity


def _thinning_notes(parity: HeadParity) -> list[str]:
    notes = []
    for quantity, unit, series in (
        ("energy", "structures", parity.energy_mev_per_atom),
        ("force", "components", parity.force_ev_per_angstrom),
    ):
        for one in series:
            if one.thinned:
                notes.append(
                    f"{quantity}, {one.name}: {len(one.reference):,} of {one.n_total:,} {unit} "
                    f"shown; the {LARGEST_ERRORS:,} largest errors always drawn"
                )
    return notes


def _baselines_hartree(
    session: Session, blocks: list[_EnergyBlock]
) -> tuple[list[np.ndarray], EnergyReference, list[str]]:
    """The energy subtracted from each structure of each block, what it is, and why so.

    Σ_Z n_Z μ_Z with μ fitted to the reference labels of every split (to the
    synthetic labels only where a head has none); where the compositions are
    not known, the mean reference energy per atom times the atom count.
    """
    if not blocks:
        return [], EnergyReference.per_element, []
    fitted = [k for k, b in enumerate(blocks) if b.kind == "energy"] or range(len(blocks))
    counts, unknown = _element_counts(session, blocks)
    if unknown is not None:
        per_atom = [blocks[k].reference_hartree / blocks[k].n_atoms for k in fitted]
        mean_hartree_per_atom = float(np.mean(np.concatenate(per_atom)))
        baselines = [mean_hartree_per_atom * b.n_atoms for b in blocks]
        return baselines, EnergyReference.mean_per_atom, [unknown]
    mu = fit_element_energies(
        np.concatenate([counts[k] for k in fitted]),
        np.concatenate([blocks[k].reference_hartree for k in fitted]),
    )
    return [one @ mu for one in counts], EnergyReference.per_element, []


def fit_element_energies(counts: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Per-element energies μ minimising Σ (E − counts · μ)² (in the units of ``energy``).

    Where the compositions do not determine every μ (one composition only, or
    elements always in the same ratio) this is the least-norm solution, whose
    Σ n_Z μ_Z is still the best fit: for one composition, the mean energy.
    """
    mu, *_ = np.linalg.lstsq(counts.astype(float), energy, rcond=None)
    return np.asarray(mu)


def _element_counts(
    session: Session, blocks: list[_EnergyBlock]
) -> tuple[list[np.ndarray], str | None]:
    """Element counts of each block's structures (a column per element), or why not known."""
    numbers = structure_numbers(session, {int(i) for b in blocks for i in b.structure_ids})
    n_unknown = sum(
        int(i) not in numbers or len(numbers[int(i)]) != n
        for b in blocks
        for i, n in zip(b.structure_ids, b.n_atoms, strict=True)
    )
    if n_unknown:
        n_all = sum(len(b.n_atoms) for b in blocks)
        return [], (
            f"{n_unknown:,} of {n_all:,} structures are not in this database, so no per-element "
            "reference can be fitted: energies per atom are shown relative to their mean"
        )
    elements = sorted({int(z) for one in numbers.values() for z in one})
    column = {z: k for k, z in enumerate(elements)}
    counts = []
    for block in blocks:
        matrix = np.zeros((len(block.n_atoms), len(elements)))
        for row, structure_id in enumerate(block.structure_ids):
            z, n = np.unique(numbers[int(structure_id)], return_counts=True)
            matrix[row, [column[int(one)] for one in z]] = n
        counts.append(matrix)
    return counts, None


def structure_numbers(session: Session, ids: Collection[int]) -> dict[int, np.ndarray]:
    """Atomic numbers of the stored structures among ``ids``."""
    wanted = sorted(ids)
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start : start + ID_CHUNK]
        rows = session.execute(
            select(Structure.id, Structure.numbers).where(Structure.id.in_(chunk))
        )
        found.update((int(i), np.asarray(numbers)) for i, numbers in rows)
    return found
