"""Registry of dataset formats: read or write structure records by format name.

=============  ===================================  =========================
name           files                                level
=============  ===================================  =========================
``paper-json``  one ``.json`` object of entries      all levels in the file
``extxyz``      one ``.xyz`` / ``.extxyz`` file      all levels in the file
``xsf``         a directory of ``.xsf`` (or one)     exactly one, must be given
=============  ===================================  =========================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from interphase.io.errors import EntryProblem, OnUnwritable
from interphase.io.extxyz import iter_extxyz_entries
from interphase.io.extxyz_write import write_extxyz
from interphase.io.paper_json import iter_paper_json_entries
from interphase.io.paper_json_write import write_paper_json
from interphase.io.xsf import iter_xsf_entries, write_xsf
from interphase.records import StructureRecord

__all__ = [
    "FORMATS",
    "DatasetFormat",
    "LevelRequiredError",
    "UnknownFormatError",
    "guess_format",
    "read_entries",
    "read_records",
    "write_records",
]


class UnknownFormatError(ValueError):
    """A format name is not registered, or a path's format cannot be guessed."""


class LevelRequiredError(ValueError):
    """A single-level format (XSF) was used without naming the level of theory."""


@dataclass(frozen=True)
class DatasetFormat:
    """How to read and write one dataset format.

    ``reader(path, level)`` and ``writer(records, path, level)`` take the
    level of theory; formats with all levels in one file ignore it. The
    reader yields an :class:`~interphase.io.errors.EntryProblem` for each
    entry it cannot read and raises only for faults of the whole file.
    """

    name: str
    reader: Callable[[Path, str | None], Iterator[StructureRecord | EntryProblem]]
    writer: Callable[[Iterable[StructureRecord], Path, str | None, OnUnwritable | None], int]
    needs_level: bool = False
    description: str = ""


def _need_level(level: str | None, fmt: str) -> str:
    if level is None:
        raise LevelRequiredError(
            f"format {fmt!r} holds one level of theory per file: pass level=..."
        )
    return level


FORMATS: dict[str, DatasetFormat] = {
    "paper-json": DatasetFormat(
        "paper-json",
        lambda path, level: iter_paper_json_entries(path),
        lambda records, path, level, skip: write_paper_json(records, path, on_unwritable=skip),
        description="Li/electrolyte transfer-learning dataset JSON (Stevenson et al.)",
    ),
    "extxyz": DatasetFormat(
        "extxyz",
        lambda path, level: iter_extxyz_entries(path),
        lambda records, path, level, skip: write_extxyz(records, path, on_unwritable=skip),
        description="extended XYZ, labels as <level>/<field> columns",
    ),
    "xsf": DatasetFormat(
        "xsf",
        lambda path, level: iter_xsf_entries(path, _need_level(level, "xsf")),
        lambda records, path, level, skip: write_xsf(
            records, path, _need_level(level, "xsf"), on_unwritable=skip
        ),
        needs_level=True,
        description="aenet XSF, one structure per file, energy in eV, forces in eV/Å",
    ),
}

_SUFFIXES = {".json": "paper-json", ".xyz": "extxyz", ".extxyz": "extxyz", ".xsf": "xsf"}


def guess_format(path: str | Path) -> str:
    """Format name from a path: ``.json``, ``.xyz``/``.extxyz``, ``.xsf`` or a directory.

    Raises
    ------
    UnknownFormatError
        For any other suffix.
    """
    path = Path(path)
    if path.is_dir():
        return "xsf"
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UnknownFormatError(
            f"cannot guess the dataset format of {str(path)!r}: expected a suffix in"
            f" {sorted(_SUFFIXES)} or a directory of .xsf files; pass fmt= one of {sorted(FORMATS)}"
        )
    return fmt


def _format(fmt: str) -> DatasetFormat:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise UnknownFormatError(
            f"unknown dataset format {fmt!r}; known: {sorted(FORMATS)}"
        ) from None


def read_entries(
    path: str | Path, fmt: str | None = None, level: str | None = None
) -> Iterator[StructureRecord | EntryProblem]:
    """Stream a dataset's entries: a record, or the problem of an entry that cannot be read.

    Parameters are those of :func:`read_records`.

    Raises
    ------
    DatasetFormatError
        A fault of the whole file (not the format, truncated, ...).
    """
    path = Path(path)
    return _format(fmt or guess_format(path)).reader(path, level)


def read_records(
    path: str | Path, fmt: str | None = None, level: str | None = None
) -> Iterator[StructureRecord]:
    """Stream the records of a dataset; ``fmt`` is guessed from ``path`` if omitted.

    Parameters
    ----------
    path
        File, or directory for XSF.
    fmt
        A key of :data:`FORMATS`.
    level
        Level of theory for single-level formats (XSF); ignored otherwise.

    Raises
    ------
    DatasetFormatError
        At the first entry that cannot be read, or a fault of the whole file.
    """
    for entry in read_entries(path, fmt, level):
        if isinstance(entry, EntryProblem):
            raise entry.error()
        yield entry


def write_records(
    records: Iterable[StructureRecord],
    path: str | Path,
    fmt: str,
    level: str | None = None,
    *,
    on_unwritable: OnUnwritable | None = None,
) -> int:
    """Write records in format ``fmt``; returns the number written.

    ``level`` is required for XSF (the level whose energy and forces are
    written) and ignored by formats that keep every level. With
    ``on_unwritable``, a record the format cannot hold is handed to it and
    left out instead of raising.
    """
    return _format(fmt).writer(records, Path(path), level, on_unwritable)
