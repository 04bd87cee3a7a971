"""Labeling inside a step: queue jobs once, drain them with the executor, count outcomes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.db.api import create_jobs
from interphase.db.models import JobReason, JobState, LabelingJob, LevelOfTheory
from interphase.db.session import transaction


class LabelingShortfallError(RuntimeError):
    """Fewer jobs of a step succeeded than the configured fraction."""


def without_jobs(
    session: Session, ctx: StepContext, level: LevelOfTheory, ids: list[int]
) -> list[int]:
    """The structures of ``ids`` with no job of this campaign at ``level`` yet (any state).

    This is what makes queueing idempotent across a resume: a job failed for
    good is not queued again by the campaign (``jobs resubmit`` is the user's).
    """
    if not ids:
        return []
    have = set(
        session.scalars(
            select(LabelingJob.structure_id).where(
                LabelingJob.level_id == level.id,
                LabelingJob.campaign_id == ctx.campaign_id,
                LabelingJob.structure_id.in_(ids),
            )
        )
    )
    return [i for i in ids if i not in have]


def queue(
    session: Session,
    ctx: StepContext,
    level: LevelOfTheory,
    ids: list[int],
    reason: JobReason = JobReason.initial,
) -> list[int]:
    """Queue jobs at ``level`` for ``ids`` (skipping those with one); returns new job ids."""
    jobs = create_jobs(
        session,
        without_jobs(session, ctx, level, ids),
        level,
        reason=reason,
        campaign_id=ctx.campaign_id,
        iteration_id=ctx.iteration_id,
    )
    return [job.id for job in jobs]


def drain(ctx: StepContext, what: str) -> None:
    """Run the campaign's open jobs to the end with the step's executor."""

    def progress(done: int, total: int) -> None:
        ctx.progress(what, done, total)

    with ctx.computing():
        ctx.executor.run_labeling(
            ctx.url,
            campaign_id=ctx.campaign_id,
            workers=ctx.workers,
            options=ctx.worker_options(),
            progress=progress,
        )


def outcome(ctx: StepContext, reason: JobReason) -> dict[str, Any]:
    """Job states of this iteration's jobs of one reason, per level, and the failed ids."""
    with transaction(ctx.url, read_only=True) as session:
        rows = session.execute(
            select(LabelingJob.id, LevelOfTheory.name, LabelingJob.state, LabelingJob.error_class)
            .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
            .where(
                LabelingJob.campaign_id == ctx.campaign_id,
                LabelingJob.iteration_id == ctx.iteration_id,
                LabelingJob.reason == reason,
            )
            .order_by(LabelingJob.id)
        ).all()
    states: dict[str, Counter[str]] = {}
    failed: list[dict[str, Any]] = []
    for job_id, level, state, error_class in rows:
        states.setdefault(level, Counter())[state.value] += 1
        if state == JobState.failed:
            failed.append({"job_id": int(job_id), "level": level, "error_class": error_class})
    total = len(rows)
    succeeded = sum(c[JobState.succeeded.value] for c in states.values())
    fraction = ctx.config.labeling.min_success_fraction
    if total and succeeded < fraction * total:
        ids = ", ".join(str(f["job_id"]) for f in failed[:10])
        raise LabelingShortfallError(
            f"only {succeeded} of {total} {reason.value} jobs succeeded (need "
            f"{fraction:.0%}); failed: {ids}. See `interphase jobs list --state failed`, fix "
            f"and `interphase jobs resubmit`, then `interphase campaign resume {ctx.campaign_name}`"
        )
    return {
        "states": {level: dict(counts) for level, counts in sorted(states.items())},
        "failed": failed,
        "n_jobs": total,
        "n_succeeded": succeeded,
    }
