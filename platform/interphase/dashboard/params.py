"""What the address and the forms carry, parsed strictly: row ids, counts and text.

Every id, cursor and count a request carries goes through :func:`whole_number`:
ASCII digits only (``"²".isdigit()`` and ``int("１")`` accept more) and at most
:data:`MAX_ROW_ID`, the largest value a database integer holds, so no value
reaches SQLite or PostgreSQL that the driver cannot bind. Text goes through
:func:`text_value`, which refuses NUL: PostgreSQL cannot bind a string holding
it, and no stored name or message can contain one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import BeforeValidator

from interphase.dashboard.errors import DashboardInputError

#: The largest row id or count accepted (a signed 64-bit integer, PostgreSQL's BIGINT).
MAX_ROW_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")


def whole_number(value: str, name: str) -> int:
    """``value`` as a whole number of ASCII digits, at most :data:`MAX_ROW_ID`.

    Raises
    ------
    DashboardInputError
        For anything else (signs, spaces, other scripts' digits, too many digits).
    """
    shown = value if len(value) <= 40 else value[:40] + "…"
    if _DIGITS.fullmatch(value) is None:
        raise DashboardInputError(f"{name} must be a whole number (digits 0-9), got {shown!r}")
    digits = value.lstrip("0") or "0"  # int() refuses over 4,300 digits: check length first
    if len(digits) > len(str(MAX_ROW_ID)) or int(digits) > MAX_ROW_ID:
        raise DashboardInputError(f"{name} must be at most {MAX_ROW_ID}, got {shown!r}")
    return int(digits)


def optional_whole_number(value: str | None, name: str) -> int | None:
    """:func:`whole_number`, or None when ``value`` is missing or blank."""
    value = (value or "").strip()
    return whole_number(value, name) if value else None


def text_value(value: str | None, name: str) -> str | None:
    """``value`` stripped, or None when blank.

    Raises
    ------
    DashboardInputError
        When it holds a NUL character.
    """
    value = (value or "").strip()
    if "\x00" in value:
        raise DashboardInputError(f"{name} must not contain a NUL character")
    return value or None


def refuse_nul(fields: Mapping[str, list[str]]) -> None:
    """Refuse a form any of whose names or values holds a NUL character."""
    for name, values in fields.items():
        if "\x00" in name or any("\x00" in value for value in values):
            shown = name.replace("\x00", "\\x00")
            raise DashboardInputError(f"form field {shown!r} must not contain a NUL character")


def _path_row_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ROW_ID:
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a row id, got {value!r}")
    try:
        return whole_number(value, "the id in the address")
    except DashboardInputError as error:
        raise ValueError(str(error)) from None


#: A row id in the address (``/jobs/{job_id}``): strict, bounded; anything else is a 404.
RowId = Annotated[int, BeforeValidator(_path_row_id)]
