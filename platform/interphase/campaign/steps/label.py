"""Step 2, label: the routed reference calculations that do not wait for a GP.

Per route: a level in ``all`` mode labels every routed candidate (the cheap
level, which also gives the charges); a level in ``selected`` mode labels a
seed set drawn at random plus the routed test structures — the rest waits for
the GP selection. A structure labeled at the level already (by anyone) reuses
its label, and one with another campaign's open job waits for it; only the
rest are queued. Jobs go through the job queue, drained by the executor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import ensure_level
from interphase.campaign.routing import routed
from interphase.campaign.steps import generate, jobs
from interphase.campaign.steps.contract import StepOutputs
from interphase.campaign.steps.jobs import FailedJob, JobOutcome, LabelSources
from interphase.db.models import CampaignStructure, JobReason, LevelOfTheory, MembershipRole
from interphase.db.session import transaction


class Outputs(StepOutputs):
    """Jobs queued per level, their outcome, and the labels computed or reused."""

    queued: dict[str, int] = Field(default_factory=dict)
    states: dict[str, dict[str, int]] = Field(default_factory=dict)
    failed: list[FailedJob] = Field(default_factory=list)
    n_jobs: int = 0
    n_succeeded: int = 0
    sources: dict[str, LabelSources] = Field(default_factory=dict)

    def note(self) -> str:
        per_level = JobOutcome(states=self.states).states_line()
        reused = ", ".join(f"{v.reused} {level}" for level, v in self.sources.items() if v.reused)
        return (per_level or "no jobs") + (f"; reused {reused}" if reused else "")


@dataclass(frozen=True)
class Inputs:
    generate: generate.Outputs


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    queued: dict[str, int] = {}
    candidates = inputs.generate.candidate_ids
    test_ids = ctx.test_ids
    with transaction(ctx.url) as session:
        for k, route in enumerate(ctx.config.routing):
            level = ensure_level(session, ctx.config.level_spec(route.level))
            mine = routed(session, route, candidates)
            if route.mode == "all":
                wanted = mine
            else:
                pool = [i for i in mine if i not in test_ids]
                n = min(route.initial_count(ctx.iteration), len(pool))
                rng = np.random.default_rng(ctx.seed("initial", k))
                seeds = sorted(pool[int(i)] for i in rng.choice(len(pool), n, replace=False))
                wanted = [i for i in mine if i in test_ids] + seeds
            queued[route.level] = len(jobs.request(session, ctx, level, wanted))
    jobs.drain(ctx, "label")
    done = jobs.outcome(ctx, JobReason.initial)
    with transaction(ctx.url) as session:
        outputs = Outputs(
            queued=queued,
            **dict(done),
            sources={
                route.level: jobs.sources(session, ctx, level, picked_now(session, ctx, level))
                for route in ctx.config.routing
                for level in [ensure_level(session, ctx.config.level_spec(route.level))]
            },
        )
        ctx.complete(session, outputs)
    return outputs


def picked_now(session: Session, ctx: StepContext, level: LevelOfTheory) -> list[int]:
    """The structures the campaign picked at ``level`` in this iteration so far."""
    return [
        int(i)
        for i in session.scalars(
            select(CampaignStructure.structure_id).where(
                CampaignStructure.campaign_id == ctx.campaign_id,
                CampaignStructure.level_id == level.id,
                CampaignStructure.role == MembershipRole.picked.value,
                CampaignStructure.iteration_index == ctx.iteration,
            )
        )
    ]
