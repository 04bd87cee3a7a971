"""Exceptions shared by the dataset readers and writers in :mod:`interphase.io`."""

from __future__ import annotations


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
