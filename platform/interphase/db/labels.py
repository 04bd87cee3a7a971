"""Reference labels: their rows, stored once per structure and level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from interphase.db.bulk import bulk_insert, upsert_insert
from interphase.db.levels import LevelCache
from interphase.db.models import Label
from interphase.records import LabelRecord

#: Array columns of a label row and the dtype each is stored in.
LABEL_ARRAYS = {
    "gradient_hartree_per_angstrom": "<f8",
    "charges_e": "<f8",
    "dipole_e_angstrom": "<f8",
}


def label_row(
    structure_id: int,
    level_id: int,
    label: LabelRecord,
    *,
    job_id: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Column values of a new :class:`Label` row (``provenance`` adds to the label's own)."""
    return {
        "structure_id": structure_id,
        "level_id": level_id,
        "job_id": job_id,
        "total_energy_hartree": label.total_energy_hartree,
        "atomization_energy_hartree": label.atomization_energy_hartree,
        "gradient_hartree_per_angstrom": label.gradient_hartree_per_angstrom,
        "charges_e": label.charges_e,
        "dipole_e_angstrom": label.dipole_e_angstrom,
        "provenance": {**(provenance or {}), **label.provenance},
    }


def insert_label_once(session: Session, row: dict[str, Any]) -> tuple[int, bool]:
    """Insert a label row unless the structure has one at that level already.

    Returns
    -------
    label_id, created
        The id of the new label, or of the one already there (``created`` False).
    """
    table = cast(Table, Label.__table__)
    statement = (
        upsert_insert(session, table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["structure_id", "level_id"])
        .returning(table.c.id)
    )
    created = session.scalar(statement)
    if created is not None:
        return int(created), True
    existing = session.scalar(
        select(Label.id).where(
            Label.structure_id == row["structure_id"], Label.level_id == row["level_id"]
        )
    )
    return int(existing or 0), False


def insert_labels(
    session: Session,
    label_rows: Sequence[Sequence[tuple[str, dict[str, Any]]]],
    ids: Sequence[int],
) -> int:
    """Insert each structure's (level name, row) pairs it has no label for yet; returns how many.

    ``label_rows[i]`` belongs to the structure ``ids[i]``; unknown levels are
    created (from the defaults where one matches).
    """
    levels = LevelCache(session)
    have: set[tuple[int, int]] = {
        (sid, lid)
        for sid, lid in session.execute(
            select(Label.structure_id, Label.level_id).where(Label.structure_id.in_(set(ids)))
        )
    }
    rows = []
    for record_rows, structure_id in zip(label_rows, ids, strict=True):
        for name, row in record_rows:
            key = (structure_id, levels.id(name))
            if key in have:
                continue
            have.add(key)
            rows.append({**row, "structure_id": structure_id, "level_id": key[1]})
    if rows:
        bulk_insert(session, cast(Table, Label.__table__), rows)
    return len(rows)
