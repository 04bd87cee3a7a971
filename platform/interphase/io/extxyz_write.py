"""Extended XYZ writer with exact (``repr``) floats.

The format, and its reader, are in :mod:`interphase.io.extxyz`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from interphase.io.errors import DatasetFormatError, OnUnwritable, text_or_report
from interphase.io.extxyz import INFO_SCALARS, PER_ATOM
from interphase.io.streams import PathOrFile, open_text_writer
from interphase.records import LabelRecord, StructureRecord

__all__ = ["format_frame", "write_extxyz"]

_FORBIDDEN_IN_LEVEL = set(":=\"',") | {" ", "\t", "\n"}


def write_extxyz(
    records: Iterable[StructureRecord],
    destination: PathOrFile,
    *,
    on_unwritable: OnUnwritable | None = None,
) -> int:
    """Write records as extxyz frames with exact (``repr``) floats.

    Parameters
    ----------
    records
        Structures to write, streamed one by one.
    destination
        Path or file object (text or binary).
    on_unwritable
        When given, a record that cannot be written is passed to it and left
        out instead of raising.

    Returns
    -------
    int
        Number of frames written.

    Raises
    ------
    DatasetFormatError
        For a level name that cannot be an extxyz column name.
    """
    count = 0
    with open_text_writer(destination) as write:
        for record in records:
            frame = text_or_report(format_frame, record, on_unwritable)
            if frame is None:
                continue
            write(frame)
            count += 1
    return count


def format_frame(record: StructureRecord) -> str:
    """Extxyz text of one record (header, comment line, one line per atom)."""
    n_atoms = record.n_atoms
    columns: list[tuple[str, str, np.ndarray]] = [
        ("species", "S", np.array(record.symbols, dtype=object)[:, None]),
        ("pos", "R", np.asarray(record.positions_angstrom, dtype=float).reshape(n_atoms, 3)),
    ]
    info: list[tuple[str, str]] = []
    if record.cell_angstrom is not None:
        cell = np.asarray(record.cell_angstrom, dtype=float).reshape(9)
        info.append(("Lattice", _quote(" ".join(map(repr, cell.tolist())))))
    info.append(("pbc", _quote(" ".join("T" if p else "F" for p in record.pbc))))
    if record.key is not None:
        info.append(("key", _quote("_JSON " + json.dumps(record.key))))
    info.append(("charge", str(int(record.charge))))
    info.append(("multiplicity", str(int(record.multiplicity))))
    info.append(("levels", _quote("_JSON " + json.dumps(list(record.labels)))))
    for level, label in record.labels.items():
        _check_level_name(level, record.key)
        info.extend(_label_info(level, label))
        for name, width in PER_ATOM.items():
            value = getattr(label, name)
            if value is not None:
                array = np.asarray(value, dtype=float).reshape(n_atoms, width)
                columns.append((f"{level}/{name}", "R", array))
    properties = ":".join(f"{name}:{kind}:{array.shape[1]}" for name, kind, array in columns)
    comment = " ".join([f"Properties={properties}", *(f"{k}={v}" for k, v in info)])
    lines = [str(n_atoms), comment]
    rows = [array.tolist() for _, _, array in columns]
    for atom in range(n_atoms):
        fields = [str(rows[0][atom][0])]
        for row in rows[1:]:
            fields.extend(map(repr, row[atom]))
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


def _label_info(level: str, label: LabelRecord) -> list[tuple[str, str]]:
    info = []
    for name in INFO_SCALARS:
        value = getattr(label, name)
        if value is not None:
            info.append((f"{level}/{name}", repr(float(value))))
    if label.dipole_e_angstrom is not None:
        dipole = np.asarray(label.dipole_e_angstrom, dtype=float).reshape(3).tolist()
        info.append((f"{level}/dipole_e_angstrom", _quote(" ".join(map(repr, dipole)))))
    if label.provenance:
        info.append((f"{level}/provenance", _quote("_JSON " + json.dumps(label.provenance))))
    return info


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _check_level_name(level: str, key: str | None) -> None:
    bad = sorted(set(level) & _FORBIDDEN_IN_LEVEL)
    if bad or not level:
        raise DatasetFormatError(
            f"level name {level!r} cannot be an extxyz column name (contains {bad})", key
        )
