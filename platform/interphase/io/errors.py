"""Exceptions and problem records shared by the dataset readers and writers in :mod:`interphase.io`.

Two kinds of fault: a problem with one *entry* (a missing key, a wrong-length
array, an unknown symbol, malformed JSON inside one entry, a file of a
directory of XSF files that is not text …) is reported as an
:class:`EntryProblem` by the ``iter_*_entries`` readers, so an import can skip
it; a problem with the *file* (unreadable, not the format at all, truncated,
frames that cannot be told apart) raises :class:`DatasetFormatError`, because
nothing after it can be trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interphase.records import StructureRecord


class DatasetFormatError(ValueError):
    """A dataset file (or a record to be written) does not follow its format.

    Parameters
    ----------
    message
        What is wrong and where; the entry key is prefixed automatically.
    key
        Key of the offending entry in its dataset, or ``None`` when the
        problem is not tied to one entry (e.g. malformed JSON before the
        first entry).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        self.problem = message
        prefix = f"entry {key!r}: " if key is not None else ""
        super().__init__(prefix + message)


@dataclass(frozen=True)
class EntryProblem:
    """One entry of a dataset that cannot be read, while the rest of the file can.

    Attributes
    ----------
    entry
        How to find the entry: its key (paper-json, XSF file stem) or, for an
        extxyz frame without a key, ``frame N``.
    reason
        What is wrong, with a position in the file where one helps (line,
        column, byte offset).
    key
        The entry key when it is known, else ``None``.
    """

    entry: str
    reason: str
    key: str | None = None

    def error(self) -> DatasetFormatError:
        """The problem as the exception the raising readers throw."""
        if self.key is not None:
            return DatasetFormatError(self.reason, self.key)
        return DatasetFormatError(f"{self.entry}: {self.reason}")

    @classmethod
    def of(cls, error: DatasetFormatError, entry: str | None = None) -> EntryProblem:
        """The problem of a per-entry :class:`DatasetFormatError` (named by its key)."""
        name = entry if entry is not None else (error.key if error.key is not None else "?")
        return cls(name, error.problem, error.key)


#: Called by a writer for a record its format cannot hold; the record is then left out.
OnUnwritable = Callable[["StructureRecord", DatasetFormatError], None]


def text_or_report(
    make_text: Callable[[StructureRecord], str],
    record: StructureRecord,
    on_unwritable: OnUnwritable | None,
) -> str | None:
    """``make_text(record)``, or ``None`` when the record cannot be written.

    A :class:`DatasetFormatError` from ``make_text`` is raised when
    ``on_unwritable`` is ``None``; otherwise it is passed to ``on_unwritable``
    with the record, which the writer then leaves out.
    """
    try:
        return make_text(record)
    except DatasetFormatError as error:
        if on_unwritable is None:
            raise
        on_unwritable(record, error)
        return None
