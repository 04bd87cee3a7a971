"""Finding, cancelling, resubmitting and queueing labeling jobs (what ``interphase jobs`` calls).

Resubmission never rewrites history: a resubmitted job goes back to pending
with its changed (validated) settings and a fresh retry budget, and its next
claim adds a new :class:`~interphase.db.models.JobAttempt`; every earlier
attempt keeps its own settings, outcome, error class and log tail. A succeeded
job is never resubmitted (its label exists, and labels are never overwritten).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.orm import Session

from interphase.db.jobs import unlabeled_structure_ids
from interphase.db.levels import get_or_create_level, known_level_id
from interphase.db.models import (
    Campaign,
    JobReason,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
)
from interphase.labeling.engines import get_engine
from interphase.labeling.job_settings import JobSettingsError, changed_settings
from interphase.labeling.queue.enqueue import create_jobs
from interphase.labeling.queue.outcome import RequeueReason

#: States a job may be resubmitted from; a pending job only to change its settings.
RESUBMITTABLE = (JobState.failed, JobState.cancelled)
#: States a job may be cancelled from.
CANCELLABLE = (JobState.pending, JobState.failed)
OPEN = (JobState.pending, JobState.running)


class JobSelectionError(ValueError):
    """A job selection or a ``--set`` assignment is malformed or matches wrongly."""


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a command acts on (all given criteria must hold)."""

    ids: tuple[int, ...] = ()
    state: JobState | None = None
    error_class: str | None = None
    campaign: str | None = None
    level: str | None = None
    engine: str | None = None
    iteration_id: int | None = None
    #: Case-insensitive substring of the job's last error message.
    message: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """WHERE clauses on ``labeling_job`` joined with ``level_of_theory``.

        Every criterion is an equality except the message, a case-insensitive
        substring taken literally (``%`` and ``_`` match themselves).
        """
        where: list[ColumnElement[bool]] = []
        if self.ids:
            where.append(LabelingJob.id.in_(self.ids))
        if self.state is not None:
            where.append(LabelingJob.state == self.state)
        if self.error_class is not None:
            where.append(LabelingJob.error_class == self.error_class)
        if self.level is not None:
            where.append(LevelOfTheory.name == self.level)
        if self.engine is not None:
            where.append(LevelOfTheory.engine == self.engine)
        if self.campaign is not None:
            by = _campaign_match(self.campaign)
            where.append(LabelingJob.campaign_id.in_(select(Campaign.id).where(by)))
        if self.iteration_id is not None:
            where.append(LabelingJob.iteration_id == self.iteration_id)
        if self.message is not None:
            where.append(LabelingJob.error_message.icontains(self.message, autoescape=True))
        return where

    def select_columns(self, *columns: Any) -> Select[Any]:
        """``columns`` of the matching jobs, joined with their level of theory."""
        return (
            select(*columns)
            .select_from(LabelingJob)
            .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
            .where(*self.conditions())
        )

    def query(self) -> Select[LabelingJob]:
        """The SELECT of matching jobs, oldest first."""
        return self.select_columns(LabelingJob).order_by(LabelingJob.id)

    def is_empty(self) -> bool:
        """True when no criterion is given (it would match every job)."""
        return self == JobFilter()


def count_matching(session: Session, selection: JobFilter) -> int:
    """How many jobs ``selection`` matches."""
    return int(session.scalar(select(func.count()).select_from(selection.query().subquery())) or 0)


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["max_iterations=200", "density_fit=false"]`` → settings changes.

    Values are read as JSON when they parse (numbers, true/false, null, lists,
    objects) and kept as strings otherwise; the engine's settings model then
    decides whether they are allowed.
    """
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise JobSelectionError(f"--set expects key=value, got {assignment!r}")
        try:
            changes[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key.strip()] = raw
    return changes


def _matching(session: Session, selection: JobFilter) -> list[LabelingJob]:
    """The matching jobs, locked; every explicit id must exist and match."""
    jobs = list(session.scalars(selection.query().with_for_update()))
    missing = set(selection.ids) - {job.id for job in jobs}
    if missing:
        raise JobSelectionError(f"no jobs with ids {sorted(missing)} match the selection")
    return jobs


def _refuse_named(selection: JobFilter, refusals: list[str]) -> None:
    """Jobs named by id that cannot be acted on are an error (matched by filter: skipped)."""
    if selection.ids and refusals:
        shown = "; ".join(refusals[:5]) + (
            f"; and {len(refusals) - 5} more" if len(refusals) > 5 else ""
        )
        raise JobSelectionError(shown)


def _label_id(session: Session, job: LabelingJob) -> int | None:
    return session.scalar(
        select(Label.id).where(
            Label.structure_id == job.structure_id, Label.level_id == job.level_id
        )
    )


def _why_not_resubmittable(session: Session, job: LabelingJob, edit: bool) -> str | None:
    if job.state == JobState.succeeded:
        return (
            f"job {job.id} succeeded: its label exists (label {_label_id(session, job)}) and "
            "labels are never overwritten"
        )
    if job.state == JobState.running:
        return f"job {job.id} is running; only failed, cancelled or pending jobs can be resubmitted"
    if job.state == JobState.pending and not edit:
        return f"job {job.id} is pending already; give --set/--unset to change its settings"
    return None


def resubmit_jobs(
    session: Session,
    selection: JobFilter,
    changes: Mapping[str, Any] | None = None,
    unset: Sequence[str] = (),
) -> list[int]:
    """Put matching failed/cancelled jobs back to pending with ``changes`` and ``unset`` applied.

    Pending jobs get the setting changes only. Each resubmitted job starts a
    fresh retry budget; its history is kept.

    Raises
    ------
    JobSelectionError
        When explicit ids include a job that cannot be resubmitted (succeeded,
        running, pending without changes, or another job of its structure and
        level is open), or when nothing matches. Nothing is changed.
    JobSettingsError
        When a resulting setting is unknown or invalid for the job's engine.
    """
    changes, unset = dict(changes or {}), tuple(unset)
    jobs = _matching(session, selection)
    reasons = {job.id: _why_not_resubmittable(session, job, bool(changes or unset)) for job in jobs}
    _refuse_named(selection, [reason for reason in reasons.values() if reason])
    eligible = [job for job in jobs if reasons[job.id] is None]
    eligible, conflicts = _without_open_twins(session, eligible)
    _refuse_named(selection, conflicts)
    if not eligible:
        raise JobSelectionError("no failed or cancelled job matches the selection")
    settings = {}
    for job in eligible:
        try:
            settings[job.id] = changed_settings(job.settings, changes, unset, job.level.engine)
        except JobSettingsError as error:
            raise JobSettingsError(f"job {job.id}: {error}") from None
    for job in eligible:
        job.settings = settings[job.id]
        job.budget_start_attempt = job.attempt
        if job.state != JobState.pending:
            job.state, job.requeued_by = JobState.pending, RequeueReason.resubmit
            job.lease_expires_at = None
    return [job.id for job in eligible]


def _without_open_twins(
    session: Session, jobs: list[LabelingJob]
) -> tuple[list[LabelingJob], list[str]]:
    """Jobs that may become open (no other open job of their structure and level), and why not."""
    closed = [job for job in jobs if job.state not in OPEN]
    pairs = {(job.structure_id, job.level_id) for job in closed}
    open_by_pair: dict[tuple[int, int], int] = {}
    if pairs:
        rows = session.execute(
            select(LabelingJob.structure_id, LabelingJob.level_id, LabelingJob.id).where(
                LabelingJob.state.in_(OPEN),
                tuple_(LabelingJob.structure_id, LabelingJob.level_id).in_(list(pairs)),
            )
        )
        open_by_pair = {(sid, lid): jid for sid, lid, jid in rows}
    kept, conflicts = [], []
    for job in jobs:
        pair = (job.structure_id, job.level_id)
        if job.state not in OPEN and pair in open_by_pair:
            conflicts.append(
                f"job {job.id}: job {open_by_pair[pair]} is already open for structure "
                f"{job.structure_id} at this level"
            )
            continue
        open_by_pair.setdefault(pair, job.id)
        kept.append(job)
    return kept, conflicts


def _why_not_cancellable(job: LabelingJob) -> str | None:
    if job.state == JobState.running:
        return f"job {job.id} is running; it can be cancelled once it is pending or failed"
    if job.state == JobState.succeeded:
        return f"job {job.id} succeeded: its label exists and stays"
    return None


def cancel_jobs(session: Session, selection: JobFilter) -> list[int]:
    """Cancel matching pending (and failed) jobs; returns the ids cancelled.

    A cancelled job is never claimed; ``resubmit`` brings it back. Running and
    succeeded jobs named by id are refused; matched by a filter they are
    skipped (see :func:`count_matching` for how many matched), like jobs
    already cancelled.

    Raises
    ------
    JobSelectionError
        For explicit ids that are missing, running or succeeded, or when
        nothing matching can be cancelled. Nothing is changed.
    """
    jobs = _matching(session, selection)
    _refuse_named(selection, [r for job in jobs if (r := _why_not_cancellable(job))])
    cancellable = [job for job in jobs if job.state in CANCELLABLE]
    if not cancellable:
        raise JobSelectionError("no pending or failed job matches the selection")
    for job in cancellable:
        job.state, job.lease_expires_at, job.requeued_by = JobState.cancelled, None, None
    return [job.id for job in cancellable]


@dataclass(frozen=True)
class QueuedJobs:
    """What :func:`queue_labeling_jobs` did."""

    job_ids: list[int]
    #: Structures left out because the level does not treat them ("molecules" at a
    #: periodic level, "periodic cells" where the engine has no periodic code).
    skipped: int = 0
    skipped_kind: str = ""


def queue_labeling_jobs(
    session: Session,
    level: str,
    *,
    structure_ids: Sequence[int] = (),
    generator: str | None = None,
    campaign: str | None = None,
) -> QueuedJobs:
    """Initial labeling jobs at ``level`` for structures with no label or job there yet.

    Structures are the given ids, or every structure (of a generator and/or a
    campaign, by name or id). A periodic level (PBE-D3) takes periodic cells
    only; a level whose engine cannot treat cells takes molecules only. The level
    is created from the defaults when it is one of them; any other unknown name
    is refused.
    """
    known_level_id(session, level)  # refuses an unknown, non-default level
    if generator is not None:
        _require_generator(session, generator)
    if structure_ids:
        found = set(session.scalars(select(Structure.id).where(Structure.id.in_(structure_ids))))
        unknown = sorted(set(structure_ids) - found)
        if unknown:
            raise JobSelectionError(f"no structures with ids {unknown[:10]}")
    campaign_id = _campaign_id(session, campaign) if campaign is not None else None
    row = get_or_create_level(session, level)
    wanted = set(structure_ids)

    def unlabeled(periodic: bool | None = None) -> list[int]:
        ids = unlabeled_structure_ids(
            session, row.id, generator=generator, campaign_id=campaign_id, periodic=periodic
        )
        return [i for i in ids if i in wanted] if wanted else ids

    periodic: bool | None = None  # which structures the level treats (None: all)
    if row.periodic:
        periodic = True
    elif row.engine is not None and not get_engine(row.engine).capabilities.periodic:
        periodic = False
    kept = unlabeled(periodic)
    skipped = 0 if periodic is None else len(unlabeled()) - len(kept)
    skipped_kind = "" if periodic is None else ("molecules" if periodic else "periodic cells")
    jobs = create_jobs(session, kept, row, reason=JobReason.initial, campaign_id=campaign_id)
    return QueuedJobs([job.id for job in jobs], skipped, skipped_kind)


def _campaign_match(campaign: str) -> ColumnElement[bool]:
    """A campaign by id (digits) or by name."""
    return Campaign.id == int(campaign) if campaign.isdigit() else Campaign.name == campaign


def _campaign_id(session: Session, campaign: str) -> int:
    found = session.scalar(select(Campaign.id).where(_campaign_match(campaign)))
    if found is None:
        raise JobSelectionError(f"no campaign {campaign!r}; `interphase status` lists them")
    return int(found)


def _require_generator(session: Session, generator: str) -> None:
    if session.scalar(select(Structure.id).where(Structure.generator == generator).limit(1)):
        return
    known = sorted(session.scalars(select(Structure.generator).distinct()))
    raise JobSelectionError(
        f"no structures made by generator {generator!r}; generators in the database: "
        f"{', '.join(known) or 'none (generate or import structures first)'}"
    )
