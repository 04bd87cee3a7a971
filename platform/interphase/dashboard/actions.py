"""Resubmitting and cancelling jobs from the page, through the labeling library.

The rules (which jobs may be resubmitted, how settings are merged and
validated, what is kept) are :func:`interphase.labeling.jobs.resubmit_jobs`'s
and ``cancel_jobs``'s; nothing here repeats them. A preview runs the same call
in a transaction that is rolled back, so the count the user confirms is the one
the library would act on, and any refusal is the library's own message. The
confirmed write runs the call again and is refused (rolled back) when it would
touch a different number of jobs than the user saw.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy.orm import Session

from interphase.dashboard.errors import DashboardInputError, SelectionChangedError
from interphase.dashboard.params import optional_whole_number, whole_number
from interphase.dashboard.queries.jobs import JobsQuery
from interphase.labeling.jobs import JobFilter, cancel_jobs, parse_assignments, resubmit_jobs

#: How many job ids a preview lists before "…".
PREVIEW_IDS = 30


class Scope(enum.StrEnum):
    """Which jobs a write acts on."""

    selected = "selected"  # the ticked checkboxes
    matching = "matching"  # everything the page's filter matches


class Action(enum.StrEnum):
    resubmit = "resubmit"
    cancel = "cancel"


@dataclass(frozen=True)
class JobsWrite:
    """A resubmit or cancel request as the page's form sends it."""

    scope: Scope
    ids: tuple[int, ...]
    query: JobsQuery
    assignments: tuple[str, ...] = ()
    expected_count: int | None = None

    @classmethod
    def parse(cls, form: Mapping[str, Sequence[str]]) -> JobsWrite:
        """From the url-encoded form (every field a list of values).

        Raises
        ------
        DashboardInputError
            For an unknown scope, an id or count that is not a whole number in
            range, text holding NUL, or no ticked job.
        """

        def one(name: str) -> str:
            values = form.get(name) or [""]
            return values[-1].strip()

        try:
            scope = Scope(one("scope") or Scope.selected)
        except ValueError:
            raise DashboardInputError(
                f"unknown scope {one('scope')!r}; choose selected or matching"
            ) from None
        ids = tuple(
            whole_number(value.strip(), "a ticked job id")
            for value in form.get("ids", [])
            if value.strip()
        )
        expected = optional_whole_number(one("expected_count"), "expected_count")
        if scope is Scope.selected and not ids:
            raise DashboardInputError(
                "no job is ticked: tick jobs in the table, or choose "
                "'every job matching the filter'"
            )
        lines = [line.strip() for text in form.get("set", []) for line in text.splitlines()]
        return cls(
            scope=scope,
            ids=ids,
            query=JobsQuery.parse({f.name: one(f.name) for f in fields(JobsQuery)}),
            assignments=tuple(line for line in lines if line),
            expected_count=expected,
        )

    def changes(self) -> dict[str, Any]:
        """The settings overrides, parsed as ``jobs resubmit --set`` parses them.

        Raises
        ------
        DashboardInputError
            For a value nested too deeply to parse (the library's own refusals
            are ValueErrors too).
        """
        try:
            return parse_assignments(self.assignments)
        except RecursionError:
            raise DashboardInputError("a setting's value is nested too deeply") from None


def job_filter(write: JobsWrite) -> JobFilter:
    """The library's selection for the page's request: the ticked jobs, or the filter's."""
    if write.scope is Scope.selected:
        return JobFilter(ids=write.ids)
    return write.query.selection()


def perform(session: Session, action: Action, write: JobsWrite) -> list[int]:
    """Run the library call for ``action``; returns the ids it acted on.

    Raises
    ------
    ValueError
        The library's refusal (its message is for the user), or
        :class:`SelectionChangedError` when ``write.expected_count`` is given and
        differs from what the call did (the caller's transaction must roll back).
    """
    selection = job_filter(write)
    if action is Action.resubmit:
        done = resubmit_jobs(session, selection, write.changes())
    else:
        done = cancel_jobs(session, selection)
    if write.expected_count is not None and len(done) != write.expected_count:
        raise SelectionChangedError(
            f"the selection changed since you reviewed it: {len(done)} job(s) now, "
            f"{write.expected_count} then; nothing was done, review it again"
        )
    return list(done)
