"""Extended XYZ (extxyz) reader and writer for structure records.

One frame per :class:`~interphase.records.StructureRecord`. Labels are stored
per level of theory under ``<level>/<field>`` names, the field spelled as the
record attribute, so units are part of every name:

=============================================  ===========  ==================
name                                           where        content
=============================================  ===========  ==================
``<level>/total_energy_hartree``               info         float
``<level>/atomization_energy_hartree``         info         float
``<level>/dipole_e_angstrom``                  info         3 floats
``<level>/provenance``                         info         JSON object
``<level>/gradient_hartree_per_angstrom``      per atom     R:3 (dE/dx)
``<level>/charges_e``                          per atom     R:1
``levels``                                     info         JSON list of levels
``key``                                        info         JSON string
``charge``, ``multiplicity``                   info         int
=============================================  ===========  ==================

Positions are in Å, the cell (``Lattice``) in Å with lattice vectors as rows of
``cell_angstrom``, ``pbc`` always written. ``levels`` lists every label so that
a level with no data and level names containing ``/`` survive; a missing
field is simply absent. Level names may not contain ``:``, ``=``, quotes,
commas or whitespace (``:`` separates the ``Properties`` columns).

Precision: ASE's own writer prints per-atom columns with ``%16.8f`` (1e-8 Å,
and only ~6 significant digits of a 0.01 Hartree/Å gradient), so this module
writes frames itself with ``repr`` of every float; ASE's parser reads them
back with ``float``, so a round trip is bit-exact. Files are read with
``ase.io.read`` one frame at a time: ``ase.io.iread`` first scans the whole
file to index the frames, so we cut frames ourselves and never hold more
than one in memory.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from interphase.io.errors import DatasetFormatError
from interphase.records import LabelRecord, StructureRecord

__all__ = ["iter_extxyz", "write_extxyz"]

_INFO_SCALARS = ("total_energy_hartree", "atomization_energy_hartree")
_PER_ATOM = {"gradient_hartree_per_angstrom": 3, "charges_e": 1}
_FORBIDDEN_IN_LEVEL = set(":=\"',") | {" ", "\t", "\n"}


# --------------------------------------------------------------------------- writing


def write_extxyz(records: Iterable[StructureRecord], destination: str | Path | IO[str]) -> int:
    """Write records as extxyz frames with exact (``repr``) floats.

    Parameters
    ----------
    records
        Structures to write, streamed one by one.
    destination
        Path or text file object.

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
    with _open_text(destination, "w") as stream:
        for record in records:
            stream.write(format_frame(record))
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
        for name, width in _PER_ATOM.items():
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
    for name in _INFO_SCALARS:
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


# --------------------------------------------------------------------------- reading


def iter_extxyz(source: str | Path | IO[str]) -> Iterator[StructureRecord]:
    """Stream the frames of an extxyz file as structure records.

    Frames without this module's label names (e.g. written by other tools)
    are read as structures without labels; ``charge`` / ``multiplicity``
    default to 0 / 1.

    Parameters
    ----------
    source
        Path or text file object.

    Yields
    ------
    StructureRecord
        One per frame, in file order.

    Raises
    ------
    DatasetFormatError
        For a truncated or unparsable frame, naming the frame index and
        line; ``key`` is the frame's key when it could be read.
    """
    from ase.io import read

    with _open_text(source, "r") as stream:
        for index, first_line, text in _frames(stream):
            try:
                atoms = read(io.StringIO(text), format="extxyz")
            except (ValueError, IndexError, KeyError) as exc:
                raise DatasetFormatError(
                    f"frame {index} (line {first_line}) is not valid extxyz: {exc}"
                ) from exc
            yield atoms_to_record(atoms, f"frame {index} (line {first_line})")


def _frames(stream: IO[str]) -> Iterator[tuple[int, int, str]]:
    """Yield (frame index, 1-based first line, frame text) without reading ahead."""
    line_number = 0
    index = 0
    while True:
        header = stream.readline()
        line_number += 1
        if not header.strip():
            if header == "":
                return
            continue  # blank separator line
        try:
            n_atoms = int(header)
        except ValueError as exc:
            raise DatasetFormatError(
                f"frame {index} (line {line_number}): expected an atom count, got {header!r}"
            ) from exc
        lines = [header]
        for _ in range(n_atoms + 1):
            line = stream.readline()
            if line == "":
                raise DatasetFormatError(
                    f"frame {index} (line {line_number}) is truncated: expected"
                    f" {n_atoms} atom lines after the comment line"
                )
            lines.append(line)
        yield index, line_number, "".join(lines)
        line_number += n_atoms + 1
        index += 1


def atoms_to_record(atoms: Any, where: str = "frame") -> StructureRecord:
    """Convert an ``ase.Atoms`` read from a file written by :func:`write_extxyz`."""
    info = atoms.info
    key = info.get("key")
    if key is not None and not isinstance(key, str):
        key = str(key)  # written by another tool without JSON encoding
    cell = np.array(atoms.cell.array, dtype=float)
    record = StructureRecord(
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        positions_angstrom=np.array(atoms.positions, dtype=float),
        cell_angstrom=cell if cell.any() else None,
        pbc=tuple(bool(p) for p in atoms.pbc),  # type: ignore[arg-type]
        charge=_as_int(info.get("charge", 0), "charge", key, where),
        multiplicity=_as_int(info.get("multiplicity", 1), "multiplicity", key, where),
        key=key,
    )
    levels = info.get("levels", [])
    if isinstance(levels, np.ndarray):
        levels = levels.tolist()  # ASE decodes an empty JSON list as a float array
    elif not isinstance(levels, list):
        levels = [levels]
    for level in levels:
        record.labels[level] = _read_label(atoms, str(level))
    return record


def _read_label(atoms: Any, level: str) -> LabelRecord:
    info, arrays = atoms.info, atoms.arrays
    label = LabelRecord(level=level)
    for name in _INFO_SCALARS:
        value = info.get(f"{level}/{name}")
        if value is not None:
            setattr(label, name, float(value))
    dipole = info.get(f"{level}/dipole_e_angstrom")
    if dipole is not None:
        label.dipole_e_angstrom = np.asarray(dipole, dtype=float).reshape(3)
    provenance = info.get(f"{level}/provenance")
    if isinstance(provenance, dict):
        label.provenance = provenance
    for name, width in _PER_ATOM.items():
        value = arrays.get(f"{level}/{name}")
        if value is not None:
            array = np.array(value, dtype=float)
            setattr(label, name, array.reshape(-1, 3) if width == 3 else array.reshape(-1))
    return label


def _as_int(value: Any, name: str, key: str | None, where: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise DatasetFormatError(f"{where}: {name} must be an integer, got {value!r}", key)
    return int(value)


@contextmanager
def _open_text(target: str | Path | IO[str], mode: str) -> Iterator[IO[str]]:
    if isinstance(target, str | Path):
        with open(target, mode, encoding="utf-8") as stream:
            yield stream
    else:
        yield target
