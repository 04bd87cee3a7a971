"""The tail of an engine's log: what a job attempt keeps of a calculation's output.

One helper for every engine and for the isolated runner, so a tail is always
the same size and read the same way (undecodable bytes replaced, never an
error).
"""

from __future__ import annotations

from pathlib import Path

#: Characters of log kept per attempt (the end of the log, where errors are).
LOG_TAIL_CHARS = 4000


def tail_of_text(text: str | bytes | None, chars: int = LOG_TAIL_CHARS) -> str | None:
    """The last ``chars`` characters of ``text``; None when there is none."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text[-chars:] or None


def tail_of_file(path: str | Path | None, chars: int = LOG_TAIL_CHARS) -> str | None:
    """The last ``chars`` characters of the file at ``path``; None when missing or empty.

    Only the end of the file is read, so a log of many megabytes costs nothing.
    """
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            # UTF-8 needs at most 4 bytes per character.
            handle.seek(max(size - 4 * chars, 0))
            data = handle.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
    return tail_of_text(data, chars)
