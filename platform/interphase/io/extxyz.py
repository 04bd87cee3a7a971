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
and only ~6 significant digits of a 0.01 Hartree/Å gradient), so
:mod:`interphase.io.extxyz_write` writes frames itself with ``repr`` of every
float; ASE's parser reads them back with ``float``, so a round trip is
bit-exact. This module reads; files are read with
``ase.io.read`` one frame at a time: ``ase.io.iread`` first scans the whole
file to index the frames, so we cut frames ourselves and never hold more
than one in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from interphase.io.errors import DatasetFormatError, EntryProblem
from interphase.io.streams import PathOrFile, open_byte_lines
from interphase.records import LabelRecord, StructureRecord

__all__ = ["atoms_to_record", "iter_extxyz", "iter_extxyz_entries"]

#: Label fields stored in the comment line (``info``), one float each.
INFO_SCALARS = ("total_energy_hartree", "atomization_energy_hartree")
#: Label fields stored as per-atom columns, with their width.
PER_ATOM = {"gradient_hartree_per_angstrom": 3, "charges_e": 1}


def iter_extxyz(source: PathOrFile) -> Iterator[StructureRecord]:
    """Stream the frames of an extxyz file as structure records.

    Frames without this module's label names (e.g. written by other tools)
    are read as structures without labels; ``charge`` / ``multiplicity``
    default to 0 / 1.

    Parameters
    ----------
    source
        Path or file object (binary or text).

    Yields
    ------
    StructureRecord
        One per frame, in file order.

    Raises
    ------
    DatasetFormatError
        At the first problem, naming the frame index and line: a frame that
        cannot be read (``key`` is the frame's key when it could be read), or a
        fault of the whole file (see :func:`iter_extxyz_entries`).
    """
    for entry in iter_extxyz_entries(source):
        if isinstance(entry, EntryProblem):
            raise entry.error()
        yield entry


def iter_extxyz_entries(
    source: PathOrFile,
) -> Iterator[StructureRecord | EntryProblem]:
    """Like :func:`iter_extxyz`, but a frame that cannot be read is yielded as a problem.

    A frame's problems: text that is not UTF-8, lines ASE cannot parse, an
    unknown element, a charge, multiplicity or label value that is not a
    number, a label array of the wrong shape. Faults of the whole file raise
    :class:`DatasetFormatError`: an atom-count line that is not a
    non-negative integer (binary content, or frames out of step) or a
    truncated last frame, since the frames after them cannot be found.
    """
    with open_byte_lines(source) as readline:
        for frame in _frames(readline):
            yield _frame_entry(frame)


@dataclass(frozen=True)
class _Frame:
    index: int
    first_line: int  # 1-based line of the atom count
    lines: list[bytes]

    @property
    def where(self) -> str:
        return f"frame {self.index} (line {self.first_line})"


def _frame_entry(frame: _Frame) -> StructureRecord | EntryProblem:
    from ase.io import read

    name = f"frame {frame.index}"
    try:
        text = _decode(frame)
    except DatasetFormatError as error:
        return EntryProblem(name, error.problem)
    try:
        atoms = read(io.StringIO(text), format="extxyz")
    except KeyError as exc:
        key = _comment_key(text)
        reason = f"{frame.where}: unknown element symbol {exc.args[0]!r}"
        return EntryProblem(key or name, reason, key)
    except (ValueError, IndexError, OSError, RuntimeError, StopIteration) as exc:
        key = _comment_key(text)
        return EntryProblem(key or name, f"{frame.where} is not valid extxyz: {exc}", key)
    try:
        return atoms_to_record(atoms, frame.where)
    except DatasetFormatError as error:
        return EntryProblem.of(error, error.key if error.key is not None else name)


def _comment_key(text: str) -> str | None:
    """The ``key`` of a frame ASE could not read, from its comment line, if it parses."""
    from ase.io.extxyz import key_val_str_to_dict

    lines = text.split("\n", 2)
    try:
        key = key_val_str_to_dict(lines[1]).get("key") if len(lines) > 1 else None
    except (ValueError, IndexError, KeyError):
        return None
    return key if isinstance(key, str) else None


def _decode(frame: _Frame) -> str:
    for number, line in enumerate(frame.lines, start=frame.first_line):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetFormatError(
                f"{frame.where}: line {number} is not UTF-8 text (byte 0x{line[exc.start]:02x}"
                f" at column {exc.start + 1}); save the file as UTF-8"
            ) from None
    return b"".join(frame.lines).decode("utf-8")


def _frames(readline: Callable[[], bytes]) -> Iterator[_Frame]:
    """Each frame's lines, without reading ahead; framing faults raise."""
    line_number = 0
    index = 0
    while True:
        header = readline()
        line_number += 1
        if not header.strip():
            if header == b"":
                return
            continue  # blank separator line
        n_atoms = _atom_count(header, index, line_number)
        lines = [header]
        for _ in range(n_atoms + 1):
            line = readline()
            if line == b"":
                raise DatasetFormatError(
                    f"frame {index} (line {line_number}) is truncated: expected"
                    f" {n_atoms} atom lines after the comment line"
                )
            lines.append(line)
        yield _Frame(index, line_number, lines)
        line_number += n_atoms + 1
        index += 1


def _atom_count(header: bytes, index: int, line_number: int) -> int:
    where = f"frame {index} (line {line_number})"
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise DatasetFormatError(
            f"{where}: line {line_number} is not text; this does not look like an extxyz file"
        )
    try:
        n_atoms = int(text)
    except ValueError:
        raise DatasetFormatError(
            f"{where}: expected an atom count, got {_short(text.rstrip())!r}; the frames after"
            " it cannot be told apart"
        ) from None
    if n_atoms < 0:
        raise DatasetFormatError(f"{where}: the atom count {n_atoms} is negative")
    return n_atoms


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def atoms_to_record(atoms: Any, where: str = "frame") -> StructureRecord:
    """Convert an ``ase.Atoms`` read from a file written by :func:`write_extxyz`.

    Raises
    ------
    DatasetFormatError
        A charge, multiplicity or label that is not a number of the right shape.
    """
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
        record.labels[str(level)] = _read_label(atoms, str(level), key, where)
    return record


def _read_label(atoms: Any, level: str, key: str | None, where: str) -> LabelRecord:
    info, arrays = atoms.info, atoms.arrays
    label = LabelRecord(level=level)
    for name in INFO_SCALARS:
        value = info.get(f"{level}/{name}")
        if value is not None:
            setattr(label, name, _as_float(value, f"{level}/{name}", key, where))
    dipole = info.get(f"{level}/dipole_e_angstrom")
    if dipole is not None:
        label.dipole_e_angstrom = _as_array(dipole, f"{level}/dipole_e_angstrom", (3,), key, where)
    provenance = info.get(f"{level}/provenance")
    if isinstance(provenance, dict):
        label.provenance = provenance
    n_atoms = len(atoms)
    for name, width in PER_ATOM.items():
        value = arrays.get(f"{level}/{name}")
        if value is not None:
            shape = (n_atoms, 3) if width == 3 else (n_atoms,)
            setattr(label, name, _as_array(value, f"{level}/{name}", shape, key, where))
    return label


def _as_int(value: Any, name: str, key: str | None, where: str) -> int:
    try:
        number = _as_float(value, name, key, where)
    except DatasetFormatError:
        number = 0.5  # reported below, as not an integer
    if not number.is_integer():
        raise DatasetFormatError(f"{where}: {name} must be an integer, got {value!r}", key)
    return int(number)


def _as_float(value: Any, name: str, key: str | None, where: str) -> float:
    if isinstance(value, bool | str | np.ndarray | list):
        raise DatasetFormatError(f"{where}: {name} must be a number, got {value!r}", key)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{where}: {name} must be a number, got {value!r}", key) from None


def _as_array(
    value: Any, name: str, shape: tuple[int, ...], key: str | None, where: str
) -> np.ndarray:
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{where}: {name} must be numbers, got {value!r}", key) from None
    if array.size != int(np.prod(shape)):
        raise DatasetFormatError(
            f"{where}: {name} has {array.size} values, expected shape {shape}", key
        )
    return array.reshape(shape)
