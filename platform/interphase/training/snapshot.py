"""Dataset snapshots from the provenance database: examples plus the exact label ids.

Targets per structure: the energy and gradient of every level chosen as a head,
the partial charges of the charge level (GFN2-xTB by default; molecular
structures only unless asked), and GP synthetic energies (energy-only targets).
A snapshot restricted to given label ids rebuilds a recorded run's data exactly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.models import Label, LevelOfTheory, Structure, SyntheticLabel
from interphase.training.dataset import TrainingDataError, TrainingExample
from interphase.training.settings import DataSettings


@dataclass
class Snapshot:
    """Training examples (ordered by structure id) with the ids of the labels used."""

    examples: list[TrainingExample]
    heads: list[str]
    label_ids: np.ndarray
    synthetic_label_ids: np.ndarray


def _example(structure: Structure) -> TrainingExample:
    return TrainingExample(
        numbers=np.asarray(structure.numbers, dtype=np.int64),
        positions_angstrom=np.asarray(structure.positions_angstrom, dtype=float),
        cell_angstrom=structure.cell_angstrom,
        pbc=structure.pbc_flags,
        total_charge_e=float(structure.charge),
        structure_id=structure.id,
    )


def _missing(wanted: np.ndarray | None, found: list[int], what: str) -> None:
    if wanted is None:
        return
    missing = sorted(set(int(i) for i in wanted) - set(found))
    if missing:
        raise TrainingDataError(
            f"{len(missing)} {what} of the recorded snapshot are gone from the database "
            f"(first ids: {missing[:5]}); the run cannot be rebuilt exactly"
        )


def load_snapshot(
    session: Session,
    data: DataSettings | None = None,
    *,
    synthetic: bool = False,
    heads: list[str] | None = None,
    campaign_id: int | None = None,
    label_ids: np.ndarray | None = None,
    synthetic_label_ids: np.ndarray | None = None,
    exclude_structure_ids: Collection[int] = (),
) -> Snapshot:
    """Examples for training from the database.

    Parameters
    ----------
    session
        An open (read-only is enough) transaction.
    data
        Which labels are targets (heads, charge level, campaign, synthetic filter).
    synthetic
        Include synthetic (GP) energies.
    heads, campaign_id
        Override ``data.heads`` / ``data.campaign_id``.
    label_ids, synthetic_label_ids
        Use exactly these rows (a recorded run's snapshot); error if any is gone.
    exclude_structure_ids
        Structures never trained on (a campaign's fixed test split).
    """
    data = data or DataSettings()
    heads = heads if heads is not None else data.heads
    campaign_id = campaign_id if campaign_id is not None else data.campaign_id
    wanted = None if label_ids is None else {int(i) for i in label_ids}
    examples: dict[int, TrainingExample] = {}
    used_labels: list[int] = []
    used_synthetic: list[int] = []
    excluded = set(exclude_structure_ids)
    query = _label_query(data, campaign_id)
    for label, structure, level in session.execute(query).all():
        if (wanted is not None and label.id not in wanted) or structure.id in excluded:
            continue
        example = examples.get(structure.id) or examples.setdefault(
            structure.id, _example(structure)
        )
        if _add_label(example, label, level, heads, data):
            used_labels.append(label.id)
    if synthetic:
        used_synthetic = _add_synthetic(
            session, examples, heads, data, campaign_id, synthetic_label_ids, excluded
        )
    _missing(label_ids, used_labels, "labels")
    _missing(synthetic_label_ids, used_synthetic, "synthetic labels")
    kept = [
        ex
        for _, ex in sorted(examples.items())
        if ex.energies_hartree or ex.synthetic_energies_hartree or ex.charges_e is not None
    ]
    if heads is None:
        heads = sorted(
            {h for ex in kept for h in (*ex.energies_hartree, *ex.synthetic_energies_hartree)}
        )
    return Snapshot(
        kept, list(heads), np.asarray(used_labels, np.int64), np.asarray(used_synthetic, np.int64)
    )


def _label_query(data: DataSettings, campaign_id: int | None) -> Any:
    """Labels with an energy, or with charges at the charge level, by structure."""
    query = (
        select(Label, Structure, LevelOfTheory.name)
        .join(Structure, Label.structure_id == Structure.id)
        .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
        .where(
            or_(
                Label.total_energy_hartree.is_not(None),
                (LevelOfTheory.name == data.charge_level) & Label.charges_e.is_not(None),
            )
        )
        .order_by(Structure.id, Label.id)
    )
    if campaign_id is not None:
        query = query.where(membership.training_label(campaign_id))
    return query


def _add_label(
    example: TrainingExample,
    label: Label,
    level: str,
    heads: list[str] | None,
    data: DataSettings,
) -> bool:
    """Put the parts of ``label`` that are targets into ``example``; True if any."""
    used = False
    if label.total_energy_hartree is not None and (heads is None or level in heads):
        example.energies_hartree[level] = float(label.total_energy_hartree)
        if label.gradient_hartree_per_angstrom is not None:
            example.gradients_hartree_per_angstrom[level] = label.gradient_hartree_per_angstrom
        used = True
    periodic = any(example.pbc)
    if (
        level == data.charge_level
        and label.charges_e is not None
        and (data.periodic_charges or not periodic)
    ):
        example.charges_e = np.asarray(label.charges_e, dtype=float)
        used = True
    return used


def _add_synthetic(
    session: Session,
    examples: dict[int, TrainingExample],
    heads: list[str] | None,
    data: DataSettings,
    campaign_id: int | None,
    wanted_ids: np.ndarray | None,
    excluded: set[int],
) -> list[int]:
    """Add synthetic energies to ``examples`` (new examples for new structures)."""
    query = (
        select(SyntheticLabel, Structure, LevelOfTheory.name)
        .join(Structure, SyntheticLabel.structure_id == Structure.id)
        .join(LevelOfTheory, SyntheticLabel.level_id == LevelOfTheory.id)
        .order_by(Structure.id, SyntheticLabel.id)
    )
    if campaign_id is not None:
        query = query.where(membership.own_synthetic(campaign_id))
    if data.max_synthetic_std_hartree is not None:
        query = query.where(SyntheticLabel.energy_std_hartree <= data.max_synthetic_std_hartree)
    wanted = None if wanted_ids is None else {int(i) for i in wanted_ids}
    used = []
    for row, structure, level in session.execute(query).all():
        if (
            (heads is not None and level not in heads)
            or (wanted is not None and row.id not in wanted)
            or structure.id in excluded
        ):
            continue
        example = examples.get(structure.id) or examples.setdefault(
            structure.id, _example(structure)
        )
        example.synthetic_energies_hartree[level] = float(row.energy_hartree)
        used.append(row.id)
    return used
