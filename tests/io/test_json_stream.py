"""Chunked framing of a top-level JSON object (strings, escapes, chunk boundaries, errors)."""

from __future__ import annotations

import io
import json

import pytest

from interphase.io.json_stream import JSONStreamError, iter_object_members

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
        (b'{"1": {"a": [1, 2]}', "unexpected end of file"),
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
