"""Stream the members of a huge top-level JSON object, fast.

The published dataset is one JSON object of 600,390 entries. Parsing it with
an event-based streaming parser costs ~100 µs per entry; instead this module
reads the file in large chunks, finds where each member ends with vectorised
numpy scans (string and escape aware), and hands each member's bytes to
orjson. Memory holds one chunk plus the member being assembled, whatever the
file size.

Only the framing is done here; orjson validates every member's JSON. Every
error names a position in the *file* — line, column and byte offset, counted
from 1, 1 and 0; columns count bytes — and, where one is known, the key of
the member at fault. Framing errors (not an object, an unbalanced bracket, a
truncated file) are faults of the whole file; a member whose brackets balance
but whose JSON is malformed is a fault of that member alone
(:class:`MemberJSONError`), and the members after it can still be read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import orjson

CHUNK_BYTES = 1 << 22
_QUOTE, _BACKSLASH, _NEWLINE = ord('"'), ord("\\"), b"\n"
_OPEN = np.array([ord("{"), ord("[")], dtype=np.uint8)
_CLOSE = np.array([ord("}"), ord("]")], dtype=np.uint8)
_BRACKETS = (ord("{"), ord("["), ord("}"), ord("]"))
_WHITESPACE = b" \t\r\n"
_LEADING_KEY = re.compile(rb'\s*,?\s*("(?:[^"\\]|\\.)*")\s*:', re.DOTALL)
_NOT_JSON_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")


@dataclass(frozen=True)
class FilePosition:
    """A place in the file: byte offset (from 0), line and column (from 1, in bytes)."""

    offset: int
    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}, byte {self.offset}"


class JSONStreamError(ValueError):
    """The stream is not a well-formed JSON object.

    Attributes
    ----------
    problem
        What is wrong, without the position.
    position
        Where in the file.
    key
        Key of the member at fault, when it could be read.
    """

    def __init__(self, problem: str, position: FilePosition, key: str | None = None) -> None:
        suffix = f" (entry {key!r})" if key is not None else ""
        super().__init__(f"{problem} at {position}{suffix}")
        self.problem = problem
        self.position = position
        self.offset = position.offset
        self.key = key


class MemberJSONError(JSONStreamError):
    """One member's JSON is malformed, but the file's framing is intact around it."""


@dataclass(frozen=True)
class Segment:
    """Raw bytes of one member (with any scalar-valued members before it) and where they start."""

    data: bytes
    offset: int
    line: int
    column: int

    def position(self, index: int) -> FilePosition:
        """File position of ``data[index]``."""
        newlines = self.data.count(_NEWLINE, 0, index)  # no copy: this runs per entry
        if not newlines:
            return FilePosition(self.offset + index, self.line, self.column + index)
        column = index - self.data.rfind(_NEWLINE, 0, index)
        return FilePosition(self.offset + index, self.line + newlines, column)

    def end(self) -> tuple[int, int, int]:
        """(offset, line, column) just past this segment."""
        position = self.position(len(self.data))
        return position.offset, position.line, position.column

    def key(self) -> str | None:
        """The key of the first member in the segment, if it can be read."""
        match = _LEADING_KEY.match(self.data)
        if match is None:
            return None
        try:
            key = json.loads(match.group(1))
        except ValueError:
            return None
        return key if isinstance(key, str) else None


def _escaped_positions(data: np.ndarray) -> np.ndarray:
    """Positions of characters preceded by an odd run of backslashes."""
    escaped = []
    skip_until = -1
    for position in np.flatnonzero(data == _BACKSLASH).tolist():  # rare: a loop is fine
        if position >= skip_until:
            escaped.append(position + 1)
            skip_until = position + 2
    return np.asarray(escaped, dtype=np.int64)


@dataclass(frozen=True)
class _Framing:
    """What one scan of a buffer found (offsets into the buffer)."""

    ends: list[int]  # just past each complete member value
    top_end: int | None  # the top-level object's closing brace
    unbalanced: int | None  # a closing bracket with nothing open


def _member_ends(data: np.ndarray) -> _Framing:
    """Ends of the depth-2 values in ``data``, the object's end and any unbalanced bracket.

    ``data`` starts inside the top-level object (depth 1), outside any string.
    Only the few structural characters (quotes, brackets) are scanned, after
    one vectorised pass.
    """
    structural = data == _QUOTE
    for code in _BRACKETS:
        structural |= data == code
    positions = np.flatnonzero(structural)
    if (data == _BACKSLASH).any():
        positions = positions[~np.isin(positions, _escaped_positions(data))]
    chars = data[positions]
    quotes = (chars == _QUOTE).astype(np.int32)
    outside = ((np.cumsum(quotes) - quotes) & 1) == 0
    delta = np.isin(chars, _OPEN).astype(np.int32) - np.isin(chars, _CLOSE).astype(np.int32)
    delta[~outside] = 0
    depth = 1 + np.cumsum(delta)
    unbalanced = None
    if (depth < 0).any():
        unbalanced = int(positions[np.argmax(depth < 0)])
    closing = delta == -1
    ends = positions[closing & (depth == 1)] + 1
    top = positions[closing & (depth == 0)]
    stops = [p for p in (unbalanced, int(top[0]) if top.size else None) if p is not None]
    if stops:
        ends = ends[ends <= min(stops)]
    top_end = int(top[0]) if top.size and (unbalanced is None or top[0] < unbalanced) else None
    return _Framing(ends.tolist(), top_end, unbalanced if top_end is None else None)


def parse_members(segment: Segment) -> Iterator[tuple[str, Any]]:
    """Members in one segment from :func:`iter_member_segments` (usually exactly one).

    Raises
    ------
    MemberJSONError
        The segment's JSON is malformed; the position is that of the fault.
    """
    data = segment.data
    stripped = data.lstrip(_WHITESPACE)
    lead = len(data) - len(stripped)
    if stripped.startswith(b","):
        stripped, lead = stripped[1:], lead + 1
    body = stripped.rstrip(_WHITESPACE)
    if not body.strip(_WHITESPACE):
        return
    try:
        members = orjson.loads(b"{" + body + b"}")
    except orjson.JSONDecodeError as error:
        # orjson counts characters of the document it was given ("{" + body + "}").
        index = lead + len(error.doc[: error.pos].encode("utf-8")) - 1
        index = max(0, min(index, len(data)))
        problem = f"malformed JSON ({error.msg})"
        if data[index:].startswith(_NOT_JSON_NUMBERS):
            problem = "malformed JSON (NaN and Infinity are not JSON numbers)"
        raise MemberJSONError(problem, segment.position(index), segment.key()) from error
    yield from members.items()


def iter_object_members(
    stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[str, Any]]:
    """(key, value) of each member of the top-level JSON object in ``stream``, in order.

    Raises
    ------
    JSONStreamError
        The stream is empty, not an object, truncated, or holds malformed JSON.
        Members before the fault have been yielded already.
    """
    for segment in iter_member_segments(stream, chunk_bytes):
        yield from parse_members(segment)


def iter_member_segments(stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES) -> Iterator[Segment]:
    """Each member of the top-level object, unparsed, with its position in the file.

    A segment holds one member whose value is an object or array, preceded by
    any scalar-valued members; :func:`parse_members` parses it. Framing errors
    raise :class:`JSONStreamError` (after the segments before the fault);
    JSON inside a segment is checked only when it is parsed.
    """
    head = _head(stream, chunk_bytes)
    bom = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    stripped = head[bom:].lstrip(_WHITESPACE)
    start_of_stripped = len(head) - len(stripped)
    first = Segment(head, 0, 1, 1).position(start_of_stripped)
    if not stripped:
        raise JSONStreamError("file is empty; expected a JSON object of entries", first)
    if not stripped.startswith(b"{"):
        raise JSONStreamError("top level must be a JSON object mapping keys to entries", first)
    # Position of buffer[0]: just past the opening brace.
    offset, line, column = first.offset + 1, first.line, first.column + 1
    buffer = stripped[1:]
    at_eof = False
    while True:
        framing = _member_ends(np.frombuffer(buffer, dtype=np.uint8))
        start = 0
        for end in framing.ends:
            segment = Segment(buffer[start:end], offset, line, column)
            yield segment
            offset, line, column = segment.end()
            start = end
        rest = Segment(buffer[start:], offset, line, column)
        if framing.unbalanced is not None:
            raise JSONStreamError(
                "unbalanced closing bracket", rest.position(framing.unbalanced - start), rest.key()
            )
        if framing.top_end is not None:
            yield from _last_segment(rest, framing.top_end - start, stream)
            return
        if at_eof:
            raise _truncated(rest)
        chunk = stream.read(max(chunk_bytes, len(buffer) - start))
        at_eof = not chunk
        buffer = buffer[start:] + chunk


def _truncated(rest: Segment) -> JSONStreamError:
    """The error for a file that ends before the top-level object is closed."""
    unfinished = rest.data.lstrip(_WHITESPACE + b",")
    if not unfinished:
        return JSONStreamError(
            "the file is truncated: the top-level object is not closed (no '}')",
            rest.position(len(rest.data)),
        )
    return JSONStreamError(
        "the file is truncated: it ends inside the entry that begins",
        rest.position(len(rest.data) - len(unfinished)),
        rest.key(),
    )


def _head(stream: IO[bytes], chunk_bytes: int) -> bytes:
    """The first chunk, extended until it holds more than a byte-order mark and whitespace."""
    head = stream.read(chunk_bytes)
    while True:
        if head.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE) and len(head) >= 3:
            return head
        more = stream.read(chunk_bytes)
        if not more:
            return head
        head += more


def _last_segment(rest: Segment, top_end: int, stream: IO[bytes]) -> Iterator[Segment]:
    """The scalar members before the closing brace; then nothing may follow it."""
    if rest.data[:top_end].strip(_WHITESPACE):
        yield Segment(rest.data[:top_end], rest.offset, rest.line, rest.column)
    trailing = rest.data[top_end + 1 :] + stream.read()
    if trailing.strip(_WHITESPACE):
        whole = Segment(rest.data[: top_end + 1] + trailing, rest.offset, rest.line, rest.column)
        junk = top_end + 1 + len(trailing) - len(trailing.lstrip(_WHITESPACE))
        raise JSONStreamError("unexpected data after the top-level object", whole.position(junk))
