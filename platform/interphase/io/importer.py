"""Import datasets into the provenance database (export: :mod:`interphase.io.export`).

An import is one transaction: either every entry of the file is stored, or
(on the first invalid entry, without ``skip_invalid``) nothing is. Records
stream through in batches, so memory does not grow with the file.

With ``skip_invalid`` every problem of one entry is skipped and listed with
its reason: an entry that cannot be read (malformed JSON inside it, a missing
key, a wrong-length array, an unknown symbol, a value that is not a number,
text that is not UTF-8, an XSF file that does not parse) and an entry that
fails :func:`~interphase.structures.validate.validate_structure` (NaN, atoms
too close, a charge/multiplicity the electron count forbids …). Faults of the
whole file still stop the import: a file that cannot be read, that is not the
format at all, or that is truncated.

Reader processes are forked by the importing process and ask the kernel to
kill them when it dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of an import
leaves no reader behind.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count, islice
from multiprocessing.queues import Queue
from pathlib import Path
from queue import Empty

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.levels import LevelCache
from interphase.db.models import Campaign
from interphase.db.session import require_schema, transaction
from interphase.db.structures import PreparedStructures, insert_prepared, prepare_structures
from interphase.io.errors import DatasetFormatError, EntryProblem
from interphase.io.export import export_dataset
from interphase.io.formats import (
    LevelRequiredError,
    UnknownFormatError,
    guess_format,
    read_entries,
)
from interphase.io.paper_json import iter_paper_json_blocks
from interphase.processes import die_with_parent
from interphase.records import StructureRecord
from interphase.structures.validate import InvalidStructureError, validate_structure

__all__ = ["BATCH_SIZE", "DatasetImportError", "ImportReport", "export_dataset", "import_dataset"]

BATCH_SIZE = 2000
#: Batches the reader may run ahead of the inserts (bounds memory).
QUEUE_BATCHES = 3

Entry = StructureRecord | EntryProblem


class DatasetImportError(ValueError):
    """An entry of the file is invalid; nothing from the file was imported."""


@dataclass
class ImportReport:
    """What an import read, stored, found already present, and skipped (with reasons)."""

    path: str
    n_read: int = 0
    n_new_structures: int = 0
    n_duplicates: int = 0
    #: Labels that joined a campaign as its seed data (``--campaign``).
    n_seeded: int = 0
    #: (entry key or ``frame N``, reason) of every skipped entry, in file order.
    skipped: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------- reader -> importer messages


@dataclass(frozen=True)
class _Batch:
    """Insert-ready rows of one block, the entries skipped in it and how many it held."""

    rows: PreparedStructures
    skipped: list[tuple[str, str]]
    n_entries: int


@dataclass(frozen=True)
class _Refusal:
    """The reader stopped: an invalid entry (``skippable``) or a fault of the whole file."""

    message: str
    skippable: bool


@dataclass(frozen=True)
class _Crash:
    """The reader failed unexpectedly; the traceback is re-raised by the importer."""

    traceback: str


@dataclass(frozen=True)
class _Done:
    """The reader's shard is complete."""


_Message = _Batch | _Refusal | _Crash | _Done


# --------------------------------------------------------------------------- readers


def _blocks(
    path: str, fmt: str | None, level: str | None, shard: tuple[int, int]
) -> Iterator[tuple[int, list[Entry]]]:
    """Numbered blocks of entries; paper-json can be sharded over several readers."""
    if (fmt or guess_format(Path(path))) == "paper-json":
        yield from iter_paper_json_blocks(path, block_size=BATCH_SIZE, shard=shard)
        return
    if shard != (0, 1):
        raise ValueError("only paper-json files can be read by several processes")
    entries = read_entries(path, fmt=fmt, level=level)
    number = 0
    while block := list(islice(entries, BATCH_SIZE)):
        yield number, block
        number += 1


def _problem(entry: Entry, index: int) -> EntryProblem | None:
    """The entry's problem: unreadable, or failing validation; None for a valid record."""
    if isinstance(entry, EntryProblem):
        return entry
    try:
        validate_structure(entry)
    except InvalidStructureError as error:
        message = str(error).removeprefix(f"structure {entry.key!r}: ")
        if entry.key is not None:
            return EntryProblem(entry.key, message, entry.key)
        return EntryProblem(f"frame {index}", f"frame {index}: {message}")
    return None


def _read_and_validate(
    path: str,
    fmt: str | None,
    level: str | None,
    skip_invalid: bool,
    emit: Callable[[_Message], None],
    shard: tuple[int, int] = (0, 1),
) -> None:
    """Parse and validate this shard's blocks and build their rows; ``emit`` each block.

    Runs in a separate process, so parsing overlaps with the database inserts.
    Emits a :class:`_Batch` per block, then :class:`_Done`; or stops with a
    :class:`_Refusal` or :class:`_Crash`.
    """
    source = {"source": Path(path).name}
    try:
        for number, entries in _blocks(path, fmt, level, shard):
            valid, skipped = [], []
            for offset, entry in enumerate(entries):
                problem = _problem(entry, number * BATCH_SIZE + offset)
                if problem is None:
                    valid.append(entry)
                    continue
                if not skip_invalid:
                    emit(_Refusal(str(problem.error()), skippable=True))
                    return
                skipped.append((problem.entry, problem.reason))
            rows = prepare_structures(
                valid,  # type: ignore[arg-type]  # only records are valid
                generator="import",
                generator_params=source,
                label_provenance=source,
            )
            emit(_Batch(rows, skipped, len(entries)))
        emit(_Done())
    except (DatasetFormatError, UnknownFormatError, LevelRequiredError, OSError) as error:
        emit(_Refusal(str(error), skippable=False))
    except Exception:  # forwarded whole to the parent, which raises it
        emit(_Crash(traceback.format_exc()))


def _produce_in_child(
    parent_pid: int,
    path: str,
    fmt: str | None,
    level: str | None,
    skip_invalid: bool,
    queue: Queue[_Message],
    shard: tuple[int, int],
) -> None:
    die_with_parent(parent_pid)
    _read_and_validate(path, fmt, level, skip_invalid, queue.put, shard)


def _reader_count(path: str, fmt: str | None) -> int:
    """Two readers for paper-json on a machine with cores to spare, else one."""
    try:
        paper_json = (fmt or guess_format(Path(path))) == "paper-json"
    except UnknownFormatError:
        return 1
    return 2 if paper_json and (os.cpu_count() or 1) >= 2 else 1


@contextmanager
def _messages(
    path: str, fmt: str | None, level: str | None, skip_invalid: bool
) -> Iterator[Iterator[_Message]]:
    """Messages of the reader processes, in block order; readers are stopped on exit.

    Reader ``r`` of ``n`` owns blocks ``r, r + n, …``, so taking one message
    from each reader's queue in turn restores the file's order.
    """
    context = multiprocessing.get_context("fork")
    n_readers = _reader_count(path, fmt)
    queues: list[Queue[_Message]] = [context.Queue(maxsize=QUEUE_BATCHES) for _ in range(n_readers)]
    processes = [
        context.Process(
            target=_produce_in_child,
            args=(os.getpid(), path, fmt, level, skip_invalid, queue, (index, n_readers)),
            daemon=True,
        )
        for index, queue in enumerate(queues)
    ]
    for process in processes:
        process.start()

    def receive() -> Iterator[_Message]:
        for turn in count():
            queue, process = queues[turn % n_readers], processes[turn % n_readers]
            while True:
                try:
                    message = queue.get(timeout=1.0)
                    break
                except Empty:
                    if not process.is_alive() and queue.empty():
                        raise DatasetImportError(
                            f"{path}: a reader process died (exit code {process.exitcode})"
                        ) from None
            yield message

    try:
        yield receive()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        for queue in queues:
            queue.close()


def import_dataset(
    path: str | Path,
    *,
    fmt: str | None = None,
    level: str | None = None,
    skip_invalid: bool = False,
    url: str | None = None,
    progress: Callable[[int], None] | None = None,
    campaign: str | None = None,
) -> ImportReport:
    """Stream ``path`` into the database in one transaction.

    Reader processes (two for paper-json) parse, validate and hash entries
    while this process inserts them, a bounded number of batches ahead
    (memory does not grow with the file).

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
    campaign
        Name of a campaign (``campaign register`` records one without running it):
        every imported entry, new or already present, joins it as seed data at
        each of its label's levels, in iteration 0.

    Raises
    ------
    DatasetImportError
        The file is malformed or an entry failed validation (and ``skip_invalid``
        is off); nothing was stored.
    """
    require_schema(url)
    if not Path(path).exists():
        raise FileNotFoundError(f"dataset {path} does not exist")
    report = ImportReport(path=str(path))
    with transaction(url) as session, _messages(str(path), fmt, level, skip_invalid) as messages:
        campaign_id = None if campaign is None else _campaign_id(session, campaign)
        for message in messages:
            if isinstance(message, _Done):
                break
            if isinstance(message, _Refusal):
                hint = " or pass --skip-invalid" if message.skippable else ""
                raise DatasetImportError(
                    f"{path}: {message.message}. Nothing was imported; fix the file{hint}."
                )
            if isinstance(message, _Crash):
                raise RuntimeError(f"reading {path} failed unexpectedly:\n{message.traceback}")
            _store(session, message, report, campaign_id)
            if progress is not None:
                progress(report.n_read)
    return report


def _campaign_id(session: Session, name: str) -> int:
    found = session.scalar(select(Campaign.id).where(Campaign.name == name))
    if found is None:
        raise ValueError(
            f"no campaign named {name!r}: record it first with `interphase campaign register "
            "FILE`, or name this file under `seed_data` in the campaign file"
        )
    return int(found)


def _store(session: Session, batch: _Batch, report: ImportReport, campaign_id: int | None) -> None:
    report.n_read += batch.n_entries
    report.skipped += batch.skipped
    if batch.rows.hashes:
        result = insert_prepared(session, batch.rows)
        n_new = sum(result.new)
        report.n_new_structures += n_new
        report.n_duplicates += len(batch.rows.hashes) - n_new
        if campaign_id is not None:
            levels = LevelCache(session)
            pairs = [
                (structure_id, levels.id(name))
                for structure_id, rows in zip(result.ids, batch.rows.label_rows, strict=True)
                for name, row in rows
                if row.get("total_energy_hartree") is not None
            ]
            membership.join_seeds(session, campaign_id, pairs)
            report.n_seeded += len(pairs)
