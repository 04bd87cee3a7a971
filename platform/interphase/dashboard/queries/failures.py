"""What is failing: failed jobs grouped by error class and message, numbers aside.

Messages that differ only in their numbers ("time limit of 1 s exceeded",
"… of 2 s exceeded") are one failure: each number becomes ``#`` in the group's
pattern. A number glued to a name (``def2-SVP``, ``GFN2-xTB``) is part of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sqlalchemy import func
from sqlalchemy.orm import Session

from interphase.db.models import JobState, LabelingJob
from interphase.labeling.jobs import JobFilter

#: A number not glued to a name: integers, decimals, exponents, a sign.
NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
#: What a number becomes in a group's pattern.
PLACEHOLDER = "#"
#: Characters of a message compared (longer messages are grouped by their start).
MESSAGE_CHARS = 1000
#: Distinct (error class, message) pairs read, most frequent first.
MAX_DISTINCT = 10_000


def message_pattern(message: str) -> str:
    """``message`` with every number replaced by :data:`PLACEHOLDER`."""
    return NUMBER.sub(PLACEHOLDER, message)


@dataclass(frozen=True)
class FailureGroup:
    """Failed jobs sharing an error class and a message pattern."""

    error_class: str | None
    pattern: str | None  # the message with its numbers as '#'
    example: str | None  # the group's most frequent message
    count: int
    n_messages: int = 1  # distinct messages in the group

    @property
    def shown(self) -> str:
        """The message, or the pattern where the group has several."""
        return (self.example if self.n_messages == 1 else self.pattern) or ""

    @property
    def message_filter(self) -> str:
        """Text every message of the group contains, for the jobs filter: the message,
        or the pattern's longest stretch without a number."""
        if self.n_messages == 1:
            return (self.example or "")[:200]
        pieces = (self.pattern or "").split(PLACEHOLDER)
        return max((piece.strip() for piece in pieces), key=len)[:200]


def failure_groups(session: Session, selection: JobFilter, limit: int = 15) -> list[FailureGroup]:
    """Failed jobs under the filter, grouped by (error class, message pattern), most first."""
    failed = replace(selection, state=JobState.failed)
    message = func.substr(LabelingJob.error_message, 1, MESSAGE_CHARS)
    rows = session.execute(
        failed.select_columns(LabelingJob.error_class, message, func.count())
        .group_by(LabelingJob.error_class, message)
        .order_by(func.count().desc(), LabelingJob.error_class)
        .limit(MAX_DISTINCT)
    ).all()
    groups: dict[tuple[str | None, str | None], FailureGroup] = {}
    for error_class, text, n in rows:  # most frequent first: the first is the example
        key = (error_class, None if text is None else message_pattern(text))
        found = groups.get(key)
        if found is None:
            groups[key] = FailureGroup(error_class, key[1], text, int(n))
        else:
            groups[key] = replace(
                found, count=found.count + int(n), n_messages=found.n_messages + 1
            )
    ranked = sorted(groups.values(), key=lambda g: (-g.count, g.error_class or "", g.pattern or ""))
    return ranked[:limit]
