"""Import datasets into the provenance database and export them back out.

An import is one transaction: either every entry of the file is stored, or
(on the first invalid entry, without ``skip_invalid``) nothing is. Records
stream through in batches, so memory does not grow with the file.
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
from typing import Any

from interphase.db.api import (
    insert_prepared,
    iter_records,
    prepare_structures,
)
from interphase.db.session import require_schema, transaction
from interphase.io.errors import DatasetFormatError
from interphase.io.formats import (
    LevelRequiredError,
    UnknownFormatError,
    guess_format,
    read_records,
    write_records,
)
from interphase.io.paper_json import iter_paper_json_blocks
from interphase.records import StructureRecord
from interphase.structures.validate import InvalidStructureError, validate_structure

BATCH_SIZE = 2000
#: Batches the reader may run ahead of the inserts (bounds memory).
QUEUE_BATCHES = 3


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


def _blocks(
    path: str, fmt: str | None, level: str | None, shard: tuple[int, int]
) -> Iterator[tuple[int, list[StructureRecord]]]:
    """Numbered blocks of records; paper-json can be sharded over several readers."""
    if (fmt or guess_format(Path(path))) == "paper-json":
        yield from iter_paper_json_blocks(path, block_size=BATCH_SIZE, shard=shard)
        return
    if shard != (0, 1):
        raise ValueError("only paper-json files can be read by several processes")
    records = read_records(path, fmt=fmt, level=level)
    number = 0
    while block := list(islice(records, BATCH_SIZE)):
        yield number, block
        number += 1


def _read_and_validate(
    path: str,
    fmt: str | None,
    level: str | None,
    skip_invalid: bool,
    emit: Callable[[tuple[Any, ...]], None],
    shard: tuple[int, int] = (0, 1),
) -> None:
    """Parse and validate this shard's blocks and build their rows; ``emit`` each block.

    Runs in a separate process, so parsing overlaps with the database inserts.
    Emits ("batch", rows, skipped, n_entries) per block, then ("done",);
    failures as ("error", text, skippable) or ("crash", traceback).
    """
    source = {"source": Path(path).name}
    try:
        for _, records in _blocks(path, fmt, level, shard):
            valid, skipped = [], []
            for record in records:
                try:
                    validate_structure(record)
                except InvalidStructureError as error:
                    if not skip_invalid:
                        emit(("error", f"entry {record.key!r} is invalid: {error}", True))
                        return
                    skipped.append((str(record.key), str(error)))
                    continue
                valid.append(record)
            rows = prepare_structures(
                valid, generator="import", generator_params=source, label_provenance=source
            )
            emit(("batch", rows, skipped, len(records)))
        emit(("done",))
    except (DatasetFormatError, UnknownFormatError, LevelRequiredError, OSError) as error:
        emit(("error", str(error), False))
    except Exception:  # forwarded whole to the parent, which raises it
        emit(("crash", traceback.format_exc()))


def _produce_in_child(
    path: str,
    fmt: str | None,
    level: str | None,
    skip_invalid: bool,
    queue: Queue[Any],
    shard: tuple[int, int],
) -> None:
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
) -> Iterator[Iterator[tuple[Any, ...]]]:
    """Messages of the reader processes, in block order; readers are stopped on exit.

    Reader ``r`` of ``n`` owns blocks ``r, r + n, …``, so taking one message
    from each reader's queue in turn restores the file's order.
    """
    context = multiprocessing.get_context("fork")
    n_readers = _reader_count(path, fmt)
    queues: list[Queue[Any]] = [context.Queue(maxsize=QUEUE_BATCHES) for _ in range(n_readers)]
    processes = [
        context.Process(
            target=_produce_in_child,
            args=(path, fmt, level, skip_invalid, queue, (index, n_readers)),
            daemon=True,
        )
        for index, queue in enumerate(queues)
    ]
    for process in processes:
        process.start()

    def receive() -> Iterator[tuple[Any, ...]]:
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
        for message in messages:
            if message[0] == "done":
                break
            if message[0] == "error":
                _, problem, skippable = message
                hint = " or pass --skip-invalid" if skippable else ""
                raise DatasetImportError(
                    f"{path}: {problem}. Nothing was imported; fix the file{hint}."
                )
            if message[0] == "crash":
                raise RuntimeError(f"reading {path} failed unexpectedly:\n{message[1]}")
            _, batch, skipped, n_entries = message
            report.n_read += n_entries
            report.skipped += skipped
            if batch.hashes:
                result = insert_prepared(session, batch)
                n_new = sum(result.new)
                report.n_new_structures += n_new
                report.n_duplicates += len(batch.hashes) - n_new
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
