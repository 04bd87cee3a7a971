"""Chunked framing of a top-level JSON object (strings, escapes, chunk boundaries, errors)."""

from __future__ import annotations

import io
import json
import re

import pytest

from interphase.io.json_stream import (
    JSONStreamError,
    MemberJSONError,
    iter_member_segments,
    iter_object_members,
    parse_members,
)

TRICKY = {
    "1": {"elements": ["Li", "C"], "note": 'braces } { and [ ] in a "string"', "x": [1.5, -2e-3]},
    'key with "quotes" and }': {"a": {"b": [[1, 2], [3, 4]]}, "s": "back\\slash\\"},
    "3": {"empty": {}, "list": []},
    "scalar": 7,
    "4": {"unicode": "é ∆ Å", "nested": [{"k": "]"}]},
}


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 22])
def test_members_match_json_module_at_any_chunk_size(chunk_bytes: int) -> None:
    text = json.dumps(TRICKY, indent=1, ensure_ascii=False).encode()
    members = list(iter_object_members(io.BytesIO(text), chunk_bytes=chunk_bytes))
    assert members == list(TRICKY.items())


def test_bom_whitespace_and_empty_object() -> None:
    assert list(iter_object_members(io.BytesIO(b"\xef\xbb\xbf \n {}\n"))) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "file is empty"),
        (b"[1, 2]", "top level must be a JSON object"),
        (b'{"1": {"a": [1, 2]}', r"truncated: the top-level object is not closed"),
        (b'{"1": {"a": [1, 2]}, "2": {"a"', r"truncated: it ends inside the entry that begins"),
        (b'{"1": {"a": 1}} {"2": {}}', "unexpected data after"),
        (b'{"1": {"a": [1,,2]}}', "malformed JSON"),
    ],
)
def test_errors(text: bytes, message: str) -> None:
    with pytest.raises(JSONStreamError, match=message):
        list(iter_object_members(io.BytesIO(text)))


def test_members_before_a_fault_are_yielded_first() -> None:
    members = iter_object_members(io.BytesIO(b'{"1": {"a": 1}, "2": {"a": [1,,2]}}'))
    assert next(members) == ("1", {"a": 1})
    with pytest.raises(JSONStreamError, match="malformed"):
        next(members)


@pytest.mark.parametrize("chunk_bytes", [1, 5, 1 << 22])
@pytest.mark.parametrize(
    ("text", "message", "key"),
    [
        # the second comma of [1,,2], on line 2
        (b'{"1": {"a": 1},\n "2": {"a": [1,,2]},\n "3": {}}', "line 2, column 16, byte 31", "2"),
        (b'{"1": {"a": 1},\n "2": {"a": [1, NaN]}}', "NaN and Infinity are not JSON", "2"),
        (b'{"1": {"a": 1},\n\n  "x\\"y": {"b": [1, 2]', "line 3, column 3, byte 19", 'x"y'),
        (b'{"1": {"a": 1}},\n "2": {"a": 1}}', "after the top-level object at line 1, col", None),
        (b"\n\n  [1]", "must be a JSON object mapping keys to entries at line 3, column 3", None),
    ],
)
def test_errors_give_the_position_in_the_file_and_the_entry(
    text: bytes, message: str, key: str | None, chunk_bytes: int
) -> None:
    """Positions are the file's (line, column, byte), at any chunk size, not a fragment's."""
    with pytest.raises(JSONStreamError, match=re.escape(message)) as info:
        list(iter_object_members(io.BytesIO(text), chunk_bytes=chunk_bytes))
    assert info.value.key == key
    offset = info.value.position.offset
    lines = text[:offset].split(b"\n")
    position = info.value.position
    assert (position.line, position.column) == (len(lines), len(lines[-1]) + 1)


def test_a_malformed_member_does_not_stop_the_framing() -> None:
    """Members after one with malformed JSON (but balanced brackets) can still be read."""
    text = b'{"1": {"a": [1,,2]}, "2": {"a": 2}}'
    segments = list(iter_member_segments(io.BytesIO(text)))
    with pytest.raises(MemberJSONError, match="malformed JSON"):
        list(parse_members(segments[0]))
    assert list(parse_members(segments[1])) == [("2", {"a": 2})]
