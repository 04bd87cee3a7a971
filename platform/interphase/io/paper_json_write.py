"""Writer of the "paper-json" dataset format (described in :mod:`interphase.io.paper_json`).

Writing streams entry by entry; floats are written with ``repr`` (via
:func:`json.dumps`), so a round trip read -> write -> read reproduces every
value bit for bit. GFN2-xTB charges go back into the level dict named by
their label's ``provenance["paper_json_parent"]``; other label provenance has
no place in the format and is not written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np

from interphase.io.errors import DatasetFormatError, OnUnwritable, text_or_report
from interphase.io.paper_json import (
    ARRAY_FIELDS,
    CHARGES_FIELD,
    DEFAULT_CHARGE_PARENT_LEVEL,
    PARENT_PROVENANCE_KEY,
    SCALAR_FIELDS,
)
from interphase.io.streams import PathOrFile, open_text_writer
from interphase.records import XTB_LEVEL, LabelRecord, StructureRecord

__all__ = ["record_to_entry", "write_paper_json"]


def write_paper_json(
    records: Iterable[StructureRecord],
    destination: PathOrFile,
    *,
    on_unwritable: OnUnwritable | None = None,
) -> int:
    """Stream records out as a paper-json file, one entry at a time.

    Parameters
    ----------
    records
        Structures to write. ``record.key`` is the entry key; records without
        a key get their running index (``"0"``, ``"1"``, ...).
    destination
        Path, or a file object open for writing (text or binary).
    on_unwritable
        When given, a record the format cannot hold is passed to it and left
        out instead of raising.

    Returns
    -------
    int
        Number of entries written.

    Raises
    ------
    DatasetFormatError
        For a duplicate key, or (without ``on_unwritable``) a record the format
        cannot hold (no labels, partly periodic, periodic without cell) or
        non-finite values.
    """
    with open_text_writer(destination) as write:
        write("{")
        seen: set[str] = set()
        for index, record in enumerate(records):
            key = record.key if record.key is not None else str(index)
            if key in seen:
                raise DatasetFormatError("duplicate entry key", key)
            text = text_or_report(partial(_entry_text, key=key), record, on_unwritable)
            if text is None:
                continue
            write(("\n" if not seen else ",\n") + json.dumps(key) + ": " + text)
            seen.add(key)
        write("\n}\n")
    return len(seen)


def _entry_text(record: StructureRecord, key: str) -> str:
    entry = record_to_entry(record, key)
    try:
        return json.dumps(entry, allow_nan=False)
    except ValueError as exc:
        raise DatasetFormatError(f"cannot write non-finite values: {exc}", key) from exc


def record_to_entry(record: StructureRecord, key: str) -> dict[str, Any]:
    """Build the JSON-ready dict of one entry (plain lists, python floats)."""
    numbers = np.asarray(record.numbers)
    entry: dict[str, Any] = {
        "atomicNumbers": numbers.tolist(),
        "elements": record.symbols,
        "positions": np.asarray(record.positions_angstrom, dtype=float).tolist(),
        "charge": int(record.charge),
        "multiplicity": int(record.multiplicity),
    }
    if record.is_periodic:
        if not all(record.pbc) or record.cell_angstrom is None:
            raise DatasetFormatError(
                f"paper-json holds only fully periodic cells with a lattice, got pbc={record.pbc}"
                f" and cell {'missing' if record.cell_angstrom is None else 'given'}",
                key,
            )
        entry["lattice"] = np.asarray(record.cell_angstrom, dtype=float).tolist()
    labels = {lv: _label_fields(lab, key) for lv, lab in record.labels.items() if lv != XTB_LEVEL}
    xtb = record.labels.get(XTB_LEVEL)
    if xtb is not None:
        xtb_fields = _label_fields(xtb, key)
        if xtb_fields:
            labels[XTB_LEVEL] = xtb_fields
        if xtb.charges_e is not None:
            parent = _charges_parent(xtb, labels)
            labels.setdefault(parent, {})[CHARGES_FIELD] = np.asarray(xtb.charges_e).tolist()
    if not labels:
        raise DatasetFormatError("has no labels; paper-json needs at least one level", key)
    entry["labels"] = labels
    return entry


def _label_fields(label: LabelRecord, key: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, attribute in SCALAR_FIELDS.items():
        value = getattr(label, attribute)
        if value is not None:
            fields[name] = float(value)
    for name, (attribute, _) in ARRAY_FIELDS.items():
        value = getattr(label, attribute)
        if value is not None:
            fields[name] = np.asarray(value, dtype=float).tolist()
    if label.level != XTB_LEVEL and label.charges_e is not None:
        raise DatasetFormatError(
            f"label {label.level!r} has charges; paper-json stores only GFN2-xTB charges"
            f" (label {XTB_LEVEL!r})",
            key,
        )
    return fields


def _charges_parent(xtb: LabelRecord, labels: dict[str, Any]) -> str:
    parent = xtb.provenance.get(PARENT_PROVENANCE_KEY)
    if isinstance(parent, str):
        return parent
    if DEFAULT_CHARGE_PARENT_LEVEL in labels:
        return DEFAULT_CHARGE_PARENT_LEVEL
    others = [level for level in labels if level != XTB_LEVEL]
    return others[0] if others else XTB_LEVEL
