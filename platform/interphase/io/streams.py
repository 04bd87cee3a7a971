"""Paths or open file objects, as the dataset readers and writers of :mod:`interphase.io` take them.

A reader accepts a path or a file object open in binary or text mode and
reads bytes (text is re-encoded as UTF-8); a writer accepts a path or a file
object open in text or binary mode and writes UTF-8 text.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PathOrFile = str | Path | IO[bytes] | IO[str]


class _EncodedTextReader:
    """Byte view of a text file object (the stream framing works on bytes)."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._pending = b""

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        while size < 0 or len(self._pending) < size:
            chunk = self._text.read(65536 if size < 0 else max(size, 1))
            if not chunk:
                break
            self._pending += chunk.encode("utf-8")
        if size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


@contextmanager
def open_bytes(source: PathOrFile) -> Iterator[IO[bytes]]:
    """``source`` as a binary stream to ``read`` from."""
    if isinstance(source, str | Path):
        with open(source, "rb") as stream:
            yield stream
    elif isinstance(source.read(0), str):
        yield _EncodedTextReader(source)  # type: ignore[arg-type, misc]
    else:
        yield source  # type: ignore[misc]


@contextmanager
def open_byte_lines(source: PathOrFile) -> Iterator[Callable[[], bytes]]:
    """A ``readline`` returning bytes, for a path or a binary or text file object."""
    if isinstance(source, str | Path):
        with open(source, "rb") as stream:
            yield stream.readline
    elif isinstance(source.read(0), str):
        text = source
        yield lambda: text.readline().encode("utf-8")  # type: ignore[union-attr]
    else:
        yield source.readline  # type: ignore[misc, return-value]


@contextmanager
def open_text_writer(destination: PathOrFile) -> Iterator[Callable[[str], Any]]:
    """A ``write`` taking text, for a path or a text or binary file object (UTF-8)."""
    if isinstance(destination, str | Path):
        with open(destination, "w", encoding="utf-8") as stream:
            yield stream.write
    elif isinstance(destination, io.RawIOBase | io.BufferedIOBase):
        yield lambda text: destination.write(text.encode("utf-8"))
    else:
        yield destination.write  # type: ignore[misc]  # a text stream here
