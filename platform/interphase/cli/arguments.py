"""Checks of command-line values that the library would take badly, before anything is stored.

Each raises a :data:`~interphase.cli.common.USER_ERRORS` exception whose message
names the value at fault and what to give instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

#: Ids beyond a 64-bit integer cannot be a row of any database (SQLite cannot even bind them).
MAX_ROW_ID = 2**63 - 1
#: Largest integer a job setting may hold: engines pass settings to C code as ``int``.
MAX_SETTING_INT = 2**31 - 1
#: Worker processes per core that ``jobs run --workers`` accepts at most.
WORKERS_PER_CORE = 4


class ArgumentError(ValueError):
    """A command-line value is out of range or unknown."""


def impossible_ids(ids: Sequence[int]) -> list[int]:
    """The ids no database row can have (beyond 64-bit integers)."""
    return [i for i in ids if not -MAX_ROW_ID - 1 <= i <= MAX_ROW_ID]


def check_campaign(campaign: str | None) -> None:
    """Refuse a campaign "id" that is not one: digits other than 0-9, or beyond 64 bits.

    The library reads a value of digits as an id; ``²`` or a 30-digit number
    would fail there with a conversion error.
    """
    if campaign is None or not campaign.isdigit():
        return
    if not campaign.isascii() or len(campaign) > 19 or int(campaign) > MAX_ROW_ID:
        raise ArgumentError(
            f"no campaign {campaign!r}; give a campaign's name or id "
            "(`interphase campaign list` lists them)"
        )


def check_engine(engine: str | None) -> None:
    """Refuse an engine name no engine is registered under, naming the known ones."""
    from interphase.labeling.engines import ENGINES

    if engine is not None and engine not in ENGINES:
        raise ArgumentError(
            f"--engine {engine!r} is not a labeling engine; known engines: "
            f"{', '.join(sorted(ENGINES))}"
        )


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_workers(workers: int) -> None:
    """Refuse fewer than one worker, or more than :data:`WORKERS_PER_CORE` per core."""
    cores = available_cores()
    most = WORKERS_PER_CORE * cores
    if not 1 <= workers <= most:
        raise ArgumentError(
            f"--workers must be between 1 and {most} ({WORKERS_PER_CORE} per core, "
            f"{cores} cores here); got {workers}"
        )


def _check_number(assignment: str, value: Any) -> None:
    """Refuse integers past :data:`MAX_SETTING_INT`, also inside lists and objects.

    Non-finite floats are the settings models' to refuse (they name the field).
    """
    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > MAX_SETTING_INT:
        raise ArgumentError(
            f"--set {assignment}: the number is too large (at most {MAX_SETTING_INT:,})"
        )
    if isinstance(value, list):
        for item in value:
            _check_number(assignment, item)
    if isinstance(value, dict):
        for item in value.values():
            _check_number(assignment, item)


def setting_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as settings changes, numbers within what engines can take.

    The engine's settings model checks keys and values afterwards; this refuses
    what would pass it and then fail in the engine (an integer beyond a C ``int``).
    """
    from interphase.labeling.jobs import JobSelectionError, parse_assignments

    changes: dict[str, Any] = {}
    for assignment in assignments:
        try:
            parsed = parse_assignments([assignment])
        except JobSelectionError:
            raise
        except ValueError:  # json's int() of a number with thousands of digits
            raise ArgumentError(
                f"--set {assignment[:40]}…: the number is too large (at most {MAX_SETTING_INT:,})"
            ) from None
        for value in parsed.values():
            _check_number(assignment, value)
        changes.update(parsed)
    return changes
