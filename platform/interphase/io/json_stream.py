"""Stream the members of a huge top-level JSON object, fast.

The published dataset is one JSON object of 600,390 entries. Parsing it with
an event-based streaming parser costs ~100 µs per entry; instead this module
reads the file in large chunks, finds where each member ends with vectorised
numpy scans (string and escape aware), and hands each member's bytes to
orjson. Memory holds one chunk plus the member being assembled, whatever the
file size.

Only the framing is done here; orjson validates every member's JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import orjson

CHUNK_BYTES = 1 << 22
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.array([ord("{"), ord("[")], dtype=np.uint8)
_CLOSE = np.array([ord("}"), ord("]")], dtype=np.uint8)
_BRACKETS = (ord("{"), ord("["), ord("}"), ord("]"))
_WHITESPACE = b" \t\r\n"


class JSONStreamError(ValueError):
    """The stream is not a well-formed JSON object; ``offset`` is the byte position."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (near byte {offset})")
        self.offset = offset


def _escaped_positions(data: np.ndarray) -> np.ndarray:
    """Positions of characters preceded by an odd run of backslashes."""
    escaped = []
    skip_until = -1
    for position in np.flatnonzero(data == _BACKSLASH).tolist():  # rare: a loop is fine
        if position >= skip_until:
            escaped.append(position + 1)
            skip_until = position + 2
    return np.asarray(escaped, dtype=np.int64)


def _member_ends(data: np.ndarray) -> tuple[np.ndarray, int | None]:
    """Offsets just past each depth-2 value's closing bracket, and the object's end.

    ``data`` starts inside the top-level object (depth 1), outside any string.
    Returns the ends of complete member values and the offset of the closing
    ``}`` of the top-level object if it is in ``data``. Only the few structural
    characters (quotes, brackets) are scanned, after one vectorised pass.
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
    if (depth < 0).any():
        raise JSONStreamError("unbalanced closing bracket", int(positions[np.argmax(depth < 0)]))
    closing = delta == -1
    ends = positions[closing & (depth == 1)] + 1
    top = positions[closing & (depth == 0)]
    if top.size:
        ends = ends[ends <= top[0]]
    return ends, (int(top[0]) if top.size else None)


def parse_members(segment: bytes, offset: int) -> Iterator[tuple[str, Any]]:
    """Members in one segment from :func:`iter_member_segments` (usually exactly one)."""
    body = segment.strip(_WHITESPACE)
    if body.startswith(b","):
        body = body[1:]
    if not body.strip(_WHITESPACE):
        return
    try:
        members = orjson.loads(b"{" + body + b"}")
    except orjson.JSONDecodeError as error:
        raise JSONStreamError(f"malformed JSON: {error}", offset) from error
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
    for offset, segment in iter_member_segments(stream, chunk_bytes):
        yield from parse_members(segment, offset)


def iter_member_segments(
    stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int, bytes]]:
    """(byte offset, raw bytes) of each member of the top-level object, unparsed.

    A segment holds one member whose value is an object or array, preceded by
    any scalar-valued members; :func:`parse_members` parses it. Framing errors
    raise :class:`JSONStreamError`; JSON inside a segment is checked only when
    it is parsed.
    """
    head = stream.read(chunk_bytes)
    head = head.removeprefix(b"\xef\xbb\xbf")
    stripped = head.lstrip(_WHITESPACE)
    if not stripped:
        raise JSONStreamError("file is empty; expected a JSON object of entries", 0)
    if not stripped.startswith(b"{"):
        raise JSONStreamError("top level must be a JSON object mapping keys to entries", 0)
    consumed = len(head) - len(stripped) + 1
    buffer = stripped[1:]
    at_eof = False
    while True:
        data = np.frombuffer(buffer, dtype=np.uint8)
        ends, top_end = _member_ends(data)
        start = 0
        for end in ends.tolist():
            yield consumed + start, buffer[start:end]
            start = end
        if top_end is not None:
            if buffer[start:top_end].strip(_WHITESPACE):
                yield consumed + start, buffer[start:top_end]
            trailing = buffer[top_end + 1 :] + stream.read()
            if trailing.strip(_WHITESPACE):
                raise JSONStreamError(
                    "unexpected data after the top-level object", consumed + top_end + 1
                )
            return
        if at_eof:
            raise JSONStreamError(
                "unexpected end of file inside the top-level object", consumed + len(buffer)
            )
        consumed += start
        chunk = stream.read(max(chunk_bytes, len(buffer) - start))
        at_eof = not chunk
        buffer = buffer[start:] + chunk
