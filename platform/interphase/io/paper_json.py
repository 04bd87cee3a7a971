"""Reader and writer of the "paper-json" dataset format.

The format of the Li / carbonate-electrolyte transfer-learning dataset
(Stevenson et al., appendix; figshare 10.6084/m9.figshare.21200515): one JSON
object whose keys are arbitrary strings (integers in practice) and whose
values are entries::

    {"0": {"atomicNumbers": [3, 6, ...], "elements": ["Li", "C", ...],
           "positions": [[x, y, z], ...],          # Å
           "charge": 0, "multiplicity": 1,
           "lattice": [[ax, ay, az], ...],          # Å, only if periodic
           "labels": {"PBE-D3": {"totalEnergy": E, # Hartree
                                 "atomizationEnergy": E,
                                 "gradient": [[dE/dx, ...], ...]},  # Hartree/Å
                      "wB97X-D3BJ_def2-TZVPD": {..., "dipoleMoment": [...],  # e·Å
                                                "xtbCharges": [...]}}}}     # e

Mapping to :class:`~interphase.records.StructureRecord`:

* ``atomicNumbers`` -> ``numbers`` (``elements`` alone is accepted and both
  must agree when both are given); ``lattice`` present -> ``pbc`` all True;
  ``charge`` / ``multiplicity`` default to 0 / 1 when absent.
* every level dict -> one :class:`~interphase.records.LabelRecord` keyed by
  the level name; a ``null`` field is a missing label.
* ``xtbCharges`` are GFN2-xTB charges stored inside another level's dict.
  They become their own label under :data:`~interphase.records.XTB_LEVEL`
  (merged into a ``"GFN2-xTB"`` level dict if the entry has one) with
  ``provenance["paper_json_parent"]`` naming the dict they sat in, so that
  :func:`~interphase.io.paper_json_write.write_paper_json` puts them back
  there.
* a level dict with no data left (``{}`` or only ``xtbCharges``) gives no
  label; the writer recreates the parent dict for the charges.

This module reads; :mod:`interphase.io.paper_json_write` writes. Reading
streams (:mod:`interphase.io.json_stream`: chunked framing, each entry parsed
by orjson), so memory does not depend on the file size; for the same reason
duplicate keys are not detected on reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from interphase.io.errors import DatasetFormatError, EntryProblem
from interphase.io.json_stream import (
    JSONStreamError,
    MemberJSONError,
    Segment,
    iter_member_segments,
    parse_members,
)
from interphase.io.streams import PathOrFile, open_bytes
from interphase.records import XTB_LEVEL, LabelRecord, StructureRecord
from interphase.structures.validate import InvalidStructureError, validate_symbols

__all__ = [
    "DEFAULT_CHARGE_PARENT_LEVEL",
    "PARENT_PROVENANCE_KEY",
    "entry_to_record",
    "iter_paper_json",
    "iter_paper_json_blocks",
    "iter_paper_json_entries",
]

#: Provenance key of the GFN2-xTB label naming the level dict its charges sat in.
PARENT_PROVENANCE_KEY = "paper_json_parent"
#: Level dict that receives ``xtbCharges`` when the provenance does not say.
DEFAULT_CHARGE_PARENT_LEVEL = "wB97X-D3BJ_def2-TZVPD"

ENTRY_FIELDS = frozenset(
    {"atomicNumbers", "elements", "positions", "charge", "multiplicity", "lattice", "labels"}
)
SCALAR_FIELDS = {
    "totalEnergy": "total_energy_hartree",
    "atomizationEnergy": "atomization_energy_hartree",
}
#: JSON name -> (record attribute, shape; the gradient's is (n_atoms, 3)).
ARRAY_FIELDS = {
    "gradient": ("gradient_hartree_per_angstrom", (-1, 3)),
    "dipoleMoment": ("dipole_e_angstrom", (3,)),
}
CHARGES_FIELD = "xtbCharges"


def iter_paper_json(
    source: PathOrFile, *, ignore_unknown_fields: bool = False
) -> Iterator[StructureRecord]:
    """Stream the entries of a paper-json file as structure records.

    Parameters
    ----------
    source
        Path, or a file object open for reading (binary preferred; text is
        re-encoded as UTF-8).
    ignore_unknown_fields
        Skip entry or label fields the format does not define instead of
        raising. Off by default so that no data is dropped silently.

    Yields
    ------
    StructureRecord
        One per entry, in file order, with ``key`` set to the entry key.

    Raises
    ------
    DatasetFormatError
        At the first problem: a fault of the whole file (not a JSON object,
        truncated, unbalanced brackets; ``key`` is ``None``) or of one entry
        (malformed JSON inside it, missing, mistyped or inconsistent fields;
        ``key`` is the entry key). Messages give the position in the file.
        Entries before the fault have already been yielded.
    """
    for entry in iter_paper_json_entries(source, ignore_unknown_fields=ignore_unknown_fields):
        if isinstance(entry, EntryProblem):
            raise entry.error()
        yield entry


def iter_paper_json_entries(
    source: PathOrFile, *, ignore_unknown_fields: bool = False
) -> Iterator[StructureRecord | EntryProblem]:
    """Like :func:`iter_paper_json`, but an entry that cannot be read is yielded as a problem.

    Only faults of the whole file raise :class:`DatasetFormatError`.
    """
    for _, entries in iter_paper_json_blocks(
        source, block_size=1, ignore_unknown_fields=ignore_unknown_fields
    ):
        yield from entries


def iter_paper_json_blocks(
    source: PathOrFile,
    *,
    block_size: int,
    shard: tuple[int, int] = (0, 1),
    ignore_unknown_fields: bool = False,
) -> Iterator[tuple[int, list[StructureRecord | EntryProblem]]]:
    """Entries in numbered blocks of ``block_size`` members; only this shard's blocks.

    Block ``b`` belongs to shard ``b % count`` of ``shard = (index, count)``.
    Every shard frames the whole file (cheap) but parses only its own blocks,
    so several processes can share the parsing of one file. An entry that
    cannot be read is an :class:`EntryProblem` in its block.

    Raises
    ------
    DatasetFormatError
        A fault of the whole file (see :func:`iter_paper_json`).
    """
    index, count = shard
    block: list[StructureRecord | EntryProblem] = []
    position = -1
    with open_bytes(source) as stream:
        segments = iter_member_segments(stream)
        while True:
            try:
                segment = next(segments)
            except StopIteration:
                break
            except JSONStreamError as exc:
                raise DatasetFormatError(f"not a valid paper-json file: {exc}") from exc
            position += 1
            if (position // block_size) % count == index:
                block.extend(_segment_entries(segment, ignore_unknown_fields))
                if (position + 1) % block_size == 0:
                    yield position // block_size, block
                    block = []
    if block:
        yield position // block_size, block


def _segment_entries(
    segment: Segment, ignore_unknown_fields: bool
) -> Iterator[StructureRecord | EntryProblem]:
    try:
        members = list(parse_members(segment))
    except MemberJSONError as exc:
        where = f"{exc.problem} at {exc.position}"
        name = exc.key if exc.key is not None else f"entry at byte {exc.position.offset}"
        yield EntryProblem(name, where, exc.key)
        return
    for key, value in members:
        try:
            yield entry_to_record(key, value, ignore_unknown_fields=ignore_unknown_fields)
        except DatasetFormatError as exc:
            yield EntryProblem.of(exc)


def entry_to_record(
    key: str, entry: Any, *, ignore_unknown_fields: bool = False
) -> StructureRecord:
    """Convert one decoded paper-json entry (a dict) into a :class:`StructureRecord`.

    Raises
    ------
    DatasetFormatError
        Naming ``key`` and the field at fault.
    """
    if not isinstance(entry, dict):
        raise DatasetFormatError(f"must be a JSON object, got {_json_type(entry)}", key)
    unknown = entry.keys() - ENTRY_FIELDS
    if unknown and not ignore_unknown_fields:
        raise DatasetFormatError(
            f"unknown fields {sorted(unknown)}; expected a subset of {sorted(ENTRY_FIELDS)}"
            " (pass ignore_unknown_fields=True to skip them)",
            key,
        )
    for required in ("positions", "labels"):
        if required not in entry:
            raise DatasetFormatError(f"missing required field {required!r}", key)
    numbers = _atomic_numbers(entry, key)
    positions = _float_array(entry["positions"], "positions", key, (len(numbers), 3))
    cell = None
    lattice = entry.get("lattice")
    if lattice is not None:
        cell = _float_array(lattice, "lattice", key, (3, 3))
    record = StructureRecord(
        numbers=numbers,
        positions_angstrom=positions,
        cell_angstrom=cell,
        pbc=(True, True, True) if cell is not None else (False, False, False),
        charge=_integer(entry.get("charge", 0), "charge", key),
        multiplicity=_integer(entry.get("multiplicity", 1), "multiplicity", key),
        labels=_labels(entry["labels"], key, len(numbers), ignore_unknown_fields),
        key=key,
    )
    return record


def _atomic_numbers(entry: dict[str, Any], key: str) -> np.ndarray:
    symbols = entry.get("elements")
    if symbols is not None and not isinstance(symbols, list):
        raise DatasetFormatError(f"elements must be a list of symbols, got {_short(symbols)}", key)
    raw = entry.get("atomicNumbers")
    if raw is None:
        if symbols is None:
            raise DatasetFormatError("missing required field 'atomicNumbers' (or 'elements')", key)
        unknown = sorted(
            {repr(s) for s in symbols if not isinstance(s, str) or s not in atomic_numbers}
        )
        if unknown:
            raise DatasetFormatError(f"elements {unknown} are not element symbols", key)
        return np.array([atomic_numbers[s] for s in symbols], dtype=np.int64)
    numbers = np.asarray(raw) if isinstance(raw, list) else np.empty(0, dtype=object)
    if numbers.ndim != 1 or numbers.dtype.kind != "i" or len(numbers) == 0:
        raise DatasetFormatError(
            f"atomicNumbers must be a non-empty list of integers, got {_short(raw)}", key
        )
    numbers = numbers.astype(np.int64, copy=False)
    if symbols is not None:
        try:
            validate_symbols(numbers, symbols, key=key)
        except InvalidStructureError as exc:
            raise DatasetFormatError(
                "elements and atomicNumbers disagree: "
                + str(exc).removeprefix(f"structure {key!r}: "),
                key,
            ) from exc
    return numbers


def _labels(
    raw: Any, key: str, n_atoms: int, ignore_unknown_fields: bool
) -> dict[str, LabelRecord]:
    if not isinstance(raw, dict) or not raw:
        raise DatasetFormatError(
            f"labels must be a non-empty object of level dicts, got {_short(raw)}", key
        )
    labels: dict[str, LabelRecord] = {}
    charges: np.ndarray | None = None
    charges_parent: str | None = None
    for level, fields in raw.items():
        if not isinstance(fields, dict):
            raise DatasetFormatError(
                f"labels[{level!r}] must be an object, got {_json_type(fields)}", key
            )
        label = LabelRecord(level=level)
        has_data = False
        for name, value in fields.items():
            if value is None:
                continue
            where = f"labels[{level!r}][{name!r}]"
            if name in SCALAR_FIELDS:
                setattr(label, SCALAR_FIELDS[name], _float(value, where, key))
            elif name in ARRAY_FIELDS:
                attribute, shape = ARRAY_FIELDS[name]
                shape = (n_atoms, 3) if name == "gradient" else shape
                setattr(label, attribute, _float_array(value, where, key, shape))
            elif name == CHARGES_FIELD:
                if charges_parent is not None:
                    raise DatasetFormatError(
                        f"xtbCharges given under both {charges_parent!r} and {level!r}", key
                    )
                charges = _float_array(value, where, key, (n_atoms,))
                charges_parent = level
                continue
            elif ignore_unknown_fields:
                continue
            else:
                raise DatasetFormatError(
                    f"unknown label field {where}; expected one of"
                    f" {[*SCALAR_FIELDS, *ARRAY_FIELDS, CHARGES_FIELD]}",
                    key,
                )
            has_data = True
        if has_data:
            labels[level] = label
    if charges is not None:
        xtb = labels.setdefault(XTB_LEVEL, LabelRecord(level=XTB_LEVEL))
        xtb.charges_e = charges
        xtb.provenance[PARENT_PROVENANCE_KEY] = charges_parent
    if not labels:
        raise DatasetFormatError("labels contain no data (every level dict is empty)", key)
    return labels


def _float(value: Any, name: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetFormatError(f"{name} must be a number, got {_short(value)}", key)
    return float(value)


def _integer(value: Any, name: str, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise DatasetFormatError(f"{name} must be an integer, got {_short(value)}", key)


def _float_array(value: Any, name: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise DatasetFormatError(f"{name} is not a regular array: {exc}", key) from exc
    if array.dtype.kind not in "fi":
        raise DatasetFormatError(f"{name} must contain only numbers, got {_short(value)}", key)
    if array.shape != shape:
        raise DatasetFormatError(f"{name} has shape {array.shape}, expected {shape}", key)
    return array.astype(float, copy=False)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
