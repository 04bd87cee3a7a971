"""Import datasets into the provenance database and export them back out.

An import is one transaction: either every entry of the file is stored, or
(on the first invalid entry, without ``skip_invalid``) nothing is. Records
stream through in batches, so memory does not grow with the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from interphase.db.api import iter_records, store_structures
from interphase.db.session import require_schema, transaction
from interphase.io.formats import read_records, write_records
from interphase.records import StructureRecord
from interphase.structures.validate import InvalidStructureError, validate_structure

BATCH_SIZE = 2000


class DatasetImportError(ValueError):
    """An entry of the file is invalid; nothing from the file was imported."""


@dataclass
class ImportReport:
    """What an import read, stored, found already present, and skipped (with reasons)."""

    path: str
    n_read: int = 0
    n_new_structures: int = 0
    n_duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _validated(
    records: Iterable[StructureRecord], report: ImportReport, skip_invalid: bool
) -> Iterator[StructureRecord]:
    for record in records:
        report.n_read += 1
        try:
            validate_structure(record)
        except InvalidStructureError as error:
            if not skip_invalid:
                raise DatasetImportError(
                    f"{report.path}: entry {record.key!r} is invalid: {error}. "
                    "Nothing was imported; fix the entry or pass --skip-invalid."
                ) from error
            report.skipped.append((str(record.key), str(error)))
            continue
        yield record


def import_dataset(
    path: str | Path,
    *,
    fmt: str | None = None,
    level: str | None = None,
    skip_invalid: bool = False,
    url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Stream ``path`` into the database in one transaction.

    Parameters
    ----------
    path
        Dataset file (or a directory of XSF files).
    fmt
        ``paper-json``, ``extxyz`` or ``xsf``; guessed from the name when omitted.
    level
        Level-of-theory key for formats that carry a single unnamed level (XSF).
    skip_invalid
        Store the valid entries and report the invalid ones instead of refusing the file.
    progress
        Called with the number of entries read so far, after each batch.

    Raises
    ------
    DatasetImportError
        An entry failed validation (and ``skip_invalid`` is off); nothing was stored.
    """
    require_schema(url)
    report = ImportReport(path=str(path))
    source = {"source": Path(path).name}
    records = _validated(read_records(path, fmt=fmt, level=level), report, skip_invalid)
    with transaction(url) as session:
        while batch := list(islice(records, BATCH_SIZE)):
            result = store_structures(
                session,
                batch,
                generator="import",
                generator_params=source,
                label_provenance=source,
            )
            n_new = sum(result.new)
            report.n_new_structures += n_new
            report.n_duplicates += len(batch) - n_new
            session.expunge_all()
            if progress is not None:
                progress(report.n_read)
    return report


def export_dataset(
    path: str | Path, fmt: str, *, level: str | None = None, url: str | None = None
) -> int:
    """Write every stored structure with its labels to ``path``; returns the count."""
    require_schema(url)
    with transaction(url) as session:
        return write_records(iter_records(session), path, fmt, level=level)
