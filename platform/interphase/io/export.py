"""Export every stored structure and its labels to a dataset file (or XSF directory).

An export always completes, and never leaves anything half-written:

* **Keys.** An entry keeps the key it had in the file it was imported from
  (a structure made by interphase: its database id). A key already used by an
  earlier entry of the same export — two imports that both used ``"0"``,
  ``"1"``, … — gets the smallest free suffix ``_2``, ``_3``, …, in database
  (id) order. XSF file names follow the same rule on the file stem, compared
  case-insensitively (for case-insensitive file systems). Keys are not part
  of a structure's identity (its content hash), so re-importing an export
  stores nothing new, and exporting that import again gives the same keys.
* **What the format cannot hold** (paper-json: a structure without labels or
  with a partly periodic cell; XSF: no label at the level, a partly periodic
  cell) is left out and reported, entry by entry, in :class:`ExportReport`.
* **Atomic.** The output is written to a hidden temporary file (a directory
  for XSF) beside the target and renamed onto it at the end; on any error or
  interrupt the temporary is removed and the target is as it was. Only a
  ``kill -9`` can leave the temporary (``.NAME.partial-XXXXXXXX``) behind,
  never a half-written target.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from interphase.db.session import require_schema, transaction
from interphase.db.structures import iter_records
from interphase.io.errors import DatasetFormatError
from interphase.io.formats import write_records
from interphase.io.xsf import xsf_file_stem
from interphase.records import StructureRecord

__all__ = ["ExportReport", "ExportTargetError", "UniqueKeys", "export_dataset"]


class ExportTargetError(ValueError):
    """The export target cannot be written (missing directory, wrong kind of path)."""


@dataclass
class ExportReport:
    """What an export wrote, which keys it renamed and which structures it left out."""

    path: str
    n_written: int = 0
    #: (key in the database, key written) of every entry whose key was already used.
    renamed: list[tuple[str, str]] = field(default_factory=list)
    #: (key, reason) of every structure the format cannot hold.
    left_out: list[tuple[str, str]] = field(default_factory=list)


class UniqueKeys:
    """Hands out each key once; a repeated key gets the smallest free ``_N`` suffix (N >= 2).

    Parameters
    ----------
    case_insensitive
        Treat keys differing only in case as the same (file names).
    """

    def __init__(self, *, case_insensitive: bool = False) -> None:
        self._fold = case_insensitive
        self._used: set[str] = set()
        self._next_suffix: dict[str, int] = {}

    def _norm(self, key: str) -> str:
        return key.casefold() if self._fold else key

    def __call__(self, key: str) -> str:
        """``key`` if it is still free, else ``key_N`` for the smallest free N."""
        if self._norm(key) not in self._used:
            self._used.add(self._norm(key))
            return key
        suffix = self._next_suffix.get(self._norm(key), 2)
        while self._norm(f"{key}_{suffix}") in self._used:
            suffix += 1
        self._next_suffix[self._norm(key)] = suffix + 1
        unique = f"{key}_{suffix}"
        self._used.add(self._norm(unique))
        return unique


def export_dataset(
    path: str | Path,
    fmt: str,
    *,
    level: str | None = None,
    url: str | None = None,
    campaign_id: int | None = None,
) -> ExportReport:
    """Write every stored structure with its labels to ``path`` (see the module docstring).

    Parameters
    ----------
    path
        Output file; for XSF a directory that does not exist yet or is empty.
    fmt
        ``paper-json``, ``extxyz`` or ``xsf``.
    level
        The level of theory to write (XSF only).
    url
        Database URL; default from settings. Only read (a read-only transaction).
    campaign_id
        Only this campaign's labeled structures.

    Raises
    ------
    ExportTargetError
        The target's directory does not exist, or the target is of the wrong kind.
    """
    require_schema(url)
    target = Path(path)
    report = ExportReport(path=str(path))

    def leave_out(record: StructureRecord, error: DatasetFormatError) -> None:
        report.left_out.append((str(record.key), error.problem))

    with (
        _replacing(target, directory=fmt == "xsf") as temporary,
        transaction(url, read_only=True) as session,
    ):
        stored = (
            iter_records(session)
            if campaign_id is None
            else iter_records(session, campaign_id=campaign_id, labeled_only=True)
        )
        records = _renamed(stored, fmt, report)
        report.n_written = write_records(
            records, temporary, fmt, level=level, on_unwritable=leave_out
        )
    return report


def _renamed(
    records: Iterable[StructureRecord], fmt: str, report: ExportReport
) -> Iterator[StructureRecord]:
    """Records with unique keys (XSF: unique file stems), renames noted in ``report``."""
    unique = UniqueKeys(case_insensitive=fmt == "xsf")
    for record in records:
        key = str(record.key)
        wanted = xsf_file_stem(key) if fmt == "xsf" else key
        given = unique(wanted)
        if given != key:
            report.renamed.append((key, given))
        record.key = given
        yield record


@contextmanager
def _replacing(target: Path, *, directory: bool) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it when the block succeeds."""
    parent = target.parent
    if not parent.is_dir():
        raise ExportTargetError(f"cannot export to {target}: directory {parent} does not exist")
    if directory and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportTargetError(
            f"cannot export XSF files to {target}: it exists and is not an empty directory;"
            " give a new directory"
        )
    if not directory and target.is_dir():
        raise ExportTargetError(f"cannot export to {target}: it is a directory; give a file name")
    temporary = parent / f".{target.name}.partial-{secrets.token_hex(4)}"
    try:
        if directory:
            temporary.mkdir()
        yield temporary
        if not directory:
            _flush_to_disk(temporary)
        os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise


def _flush_to_disk(path: Path) -> None:
    """Data on disk before the rename, so a crash cannot leave an empty target."""
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
