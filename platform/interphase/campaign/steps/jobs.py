"""Labeling inside a step: pick structures, queue only the jobs needed, drain, count outcomes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.steps.contract import StoredModel
from interphase.db import membership
from interphase.db.models import (
    OPEN_JOB_STATES,
    CampaignStructure,
    JobReason,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    MembershipRole,
)
from interphase.db.session import transaction
from interphase.labeling.queue.enqueue import create_jobs
from interphase.labeling.queue.lease import requeue_expired


class LabelingShortfallError(RuntimeError):
    """Fewer jobs of a step succeeded than the configured fraction."""


class FailedJob(StoredModel):
    """A job of the step that failed for good (ready for ``jobs resubmit``)."""

    job_id: int
    level: str
    error_class: str | None = None


class LabelSources(StoredModel):
    """Of the structures picked at a level: labels computed by the campaign and reused."""

    picked: int = 0
    computed: int = 0
    reused: int = 0


class JobOutcome(StoredModel):
    """Job states of a step's jobs of one reason, per level, and the failed ones."""

    states: dict[str, dict[str, int]] = Field(default_factory=dict)
    failed: list[FailedJob] = Field(default_factory=list)
    n_jobs: int = 0
    n_succeeded: int = 0

    def states_line(self) -> str:
        """``level n state, ...; level ...`` (empty without jobs)."""
        return "; ".join(
            f"{level} " + ", ".join(f"{n} {s}" for s, n in counts.items())
            for level, counts in self.states.items()
        )


def without_picks(
    session: Session, ctx: StepContext, level: LevelOfTheory, ids: list[int]
) -> list[int]:
    """The structures of ``ids`` the campaign has not picked at ``level`` yet.

    This is what makes queueing idempotent across a resume: a structure picked
    once is not picked again, even when its job failed for good (``jobs
    resubmit`` is the user's).
    """
    if not ids:
        return []
    have = set(
        session.scalars(
            select(CampaignStructure.structure_id).where(
                CampaignStructure.campaign_id == ctx.campaign_id,
                CampaignStructure.level_id == level.id,
                CampaignStructure.role == MembershipRole.picked.value,
                CampaignStructure.structure_id.in_(ids),
            )
        )
    )
    return [i for i in ids if i not in have]


def request(
    session: Session,
    ctx: StepContext,
    level: LevelOfTheory,
    ids: list[int],
    reason: JobReason = JobReason.initial,
    reason_detail: Callable[[int], dict[str, Any]] | None = None,
) -> list[int]:
    """Pick ``ids`` at ``level`` for the campaign; returns the ids of the jobs it queued.

    :func:`~interphase.labeling.queue.enqueue.create_jobs` makes the picks and queues jobs only
    where needed: a structure with a label at the level reuses it, one with an
    open job (of any campaign) waits for that job. Structures picked earlier (a
    resumed step) are left as they are.
    """
    wanted = without_picks(session, ctx, level, ids)
    fields = {"reason": reason, "campaign_id": ctx.campaign_id, "iteration_id": ctx.iteration_id}
    if reason_detail is None:
        return [job.id for job in create_jobs(session, wanted, level, **fields)]
    job_ids: list[int] = []
    for i in sorted(wanted):  # one insert order for all campaigns (no deadlock)
        created = create_jobs(session, [i], level, reason_detail=reason_detail(i), **fields)
        job_ids += [job.id for job in created]
    return job_ids


def sources(
    session: Session, ctx: StepContext, level: LevelOfTheory, ids: list[int]
) -> LabelSources:
    """Of the structures ``ids`` picked at ``level``: how many labels the campaign computed
    (its own jobs) and how many it reused (labels made before, or by another campaign)."""
    own = set(
        session.scalars(
            select(LabelingJob.structure_id).where(
                LabelingJob.campaign_id == ctx.campaign_id,
                LabelingJob.level_id == level.id,
                LabelingJob.structure_id.in_(ids),
            )
        )
    )
    labeled = set(
        session.scalars(
            select(Label.structure_id).where(
                Label.level_id == level.id, Label.structure_id.in_(ids)
            )
        )
    )
    return LabelSources(
        picked=len(set(ids)), computed=len(own & labeled), reused=len(labeled - own)
    )


def drain(ctx: StepContext, what: str, poll_s: float = 1.0) -> None:
    """Run the campaign's open jobs to the end with the step's executor.

    The campaign's jobs include open jobs of other campaigns that it waits
    for: its workers may claim them; those running elsewhere are waited for
    (a dead worker's job comes back through its lease and is claimed here).
    """

    def progress(done: int, total: int) -> None:
        ctx.progress(f"{what}: jobs finished", done, total)

    with ctx.computing():
        while True:
            ctx.executor.run_labeling(
                ctx.url,
                campaign_id=ctx.campaign_id,
                workers=ctx.workers,
                options=ctx.worker_options(),
                progress=progress,
            )
            while (left := _open_jobs(ctx)) and not left.get(JobState.pending):
                running = left.get(JobState.running, 0)
                ctx.progress(f"{what}: waiting for {running} job(s) running elsewhere", 0, None)
                time.sleep(poll_s)
                requeue_expired(ctx.url, ctx.worker_options().retry)  # a dead worker's job
            if not left:
                return


def _open_jobs(ctx: StepContext) -> Counter[JobState]:
    """The campaign's open jobs (its own and those it waits for), by state."""
    with transaction(ctx.url, read_only=True) as session:
        rows = session.execute(
            select(LabelingJob.state, func.count())
            .where(
                LabelingJob.state.in_(OPEN_JOB_STATES),
                membership.campaign_job(ctx.campaign_id),
            )
            .group_by(LabelingJob.state)
        ).all()
    return Counter({JobState(state): int(n) for state, n in rows})


def outcome(ctx: StepContext, reason: JobReason) -> JobOutcome:
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
    failed: list[FailedJob] = []
    for job_id, level, state, error_class in rows:
        states.setdefault(level, Counter())[state.value] += 1
        if state == JobState.failed:
            failed.append(FailedJob(job_id=int(job_id), level=level, error_class=error_class))
    total = len(rows)
    succeeded = sum(c[JobState.succeeded.value] for c in states.values())
    fraction = ctx.config.labeling.min_success_fraction
    if total and succeeded < fraction * total:
        ids = ", ".join(str(f.job_id) for f in failed[:10])
        raise LabelingShortfallError(
            f"only {succeeded} of {total} {reason.value} jobs succeeded (need "
            f"{fraction:.0%}); failed: {ids}. See `interphase jobs list --state failed`, fix "
            f"and `interphase jobs resubmit`, then `interphase campaign resume {ctx.campaign_name}`"
        )
    return JobOutcome(
        states={level: dict(counts) for level, counts in sorted(states.items())},
        failed=failed,
        n_jobs=total,
        n_succeeded=succeeded,
    )
