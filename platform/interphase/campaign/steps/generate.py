"""Step 1, generate: this iteration's candidates.

The configured generators run (in the first iteration, or in every one), each
with a seed derived from the campaign's; what exploration with the previous
iteration's model produced joins them. The first iteration also draws the
fixed test split from its candidates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import ensure_level
from interphase.campaign.seeding import seed_campaign
from interphase.campaign.steps.contract import Candidates, StepOutputs
from interphase.db import membership
from interphase.db.models import MembershipRole
from interphase.db.session import transaction
from interphase.structures.batch import GenerationBatch
from interphase.structures.recipes import generate, work_units
from interphase.structures.store import store_batch


class Outputs(StepOutputs):
    """This iteration's candidates (and, in the first, the test split)."""

    candidate_ids: list[int] = Field(default_factory=list)
    generated_ids: list[int] = Field(default_factory=list)
    explored_ids: list[int] = Field(default_factory=list)
    test_ids: list[int] = Field(default_factory=list)
    n_new: int = 0
    n_seed_labels: int = 0
    by_generator: dict[str, int] = Field(default_factory=dict)
    rejected: dict[str, int] = Field(default_factory=dict)

    def note(self) -> str:
        made = ", ".join(f"{n} {g}" for g, n in self.by_generator.items())
        return (
            f"{len(self.candidate_ids)} candidates"
            + (f" ({made})" if made else "")
            + (f", {len(self.explored_ids)} from exploration" if self.explored_ids else "")
            + (f", {len(self.test_ids)} in the test split" if self.test_ids else "")
        )


@dataclass(frozen=True)
class Inputs:
    #: The previous iteration's exploration (None in the first iteration).
    explored: Candidates | None = None


def _generator_configs(ctx: StepContext) -> list[tuple[str, BaseModel]]:
    generators = ctx.config.generators
    if ctx.iteration > 0 and generators.iterations == "first":
        return []
    parts: list[tuple[str, BaseModel]] = []
    for kind, configs in (
        ("lattice", generators.lattice),
        ("molecules", generators.molecules),
        ("afir", generators.afir),
        ("md", generators.md),
    ):
        for k, config in enumerate(configs):
            seeded = config.model_copy(update={"seed": ctx.seed(kind, k)})
            parts.append((f"{kind}[{k}]", seeded))
    return parts


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    parts = _generator_configs(ctx)
    total = sum(work_units(config) for _, config in parts)  # type: ignore[arg-type,misc]
    done = 0
    batch = GenerationBatch()
    for name, config in parts:

        def advance(n: int, name: str = name) -> None:
            nonlocal done
            done += n
            ctx.progress(f"generate {name}", done, total)

        with ctx.computing():
            batch.extend(generate(config, advance))  # type: ignore[arg-type]
    with transaction(ctx.url) as session:
        explored = [] if inputs.explored is None else list(inputs.explored.candidate_ids)
        stored = store_batch(
            session,
            batch,
            campaign_id=ctx.campaign_id,
            iteration_id=ctx.iteration_id,
            role=MembershipRole.candidate,
        )
        generated = list(dict.fromkeys(stored.ids))
        candidates = list(dict.fromkeys(generated + explored))
        membership.join(session, ctx.campaign_id, explored, MembershipRole.candidate, ctx.iteration)
        test_ids: list[int] = []
        seeded = 0
        if ctx.iteration == 0:
            seeded = _seed(session, ctx)
            test_ids = _test_split(ctx, _without_seeds(session, ctx, candidates))
            membership.join(session, ctx.campaign_id, test_ids, MembershipRole.test, 0)
        by_generator = Counter(item.generator for item in batch.items)
        outputs = Outputs(
            candidate_ids=candidates,
            generated_ids=generated,
            explored_ids=explored,
            test_ids=test_ids,
            n_new=stored.n_new,
            n_seed_labels=seeded,
            by_generator=dict(sorted(by_generator.items())),
            rejected={f"{g}:{r}": n for (g, r), n in sorted(batch.rejected.items())},
        )
        ctx.complete(session, outputs)
    return outputs


def _seed(session: Session, ctx: StepContext) -> int:
    """Join the campaign's ``seed_data`` (labels it trains on from the start)."""
    if not ctx.config.seed_data:
        return 0
    level_ids = {
        route.level: ensure_level(session, ctx.config.level_spec(route.level)).id
        for route in ctx.config.routing
    }
    seeded = 0
    for k, selector in enumerate(ctx.config.seed_data):
        seeded += seed_campaign(
            session,
            ctx.campaign_id,
            selector,
            level_ids,
            partial(ctx.display_progress, f"seed_data[{k}]"),
        )
    return seeded


def _without_seeds(session: Session, ctx: StepContext, candidates: list[int]) -> list[int]:
    """``candidates`` less the campaign's seed data (which it trains on, so never tests on)."""
    seeds = set(session.scalars(membership.member(ctx.campaign_id, MembershipRole.seed)))
    return [i for i in candidates if i not in seeds]


def _test_split(ctx: StepContext, candidates: list[int]) -> list[int]:
    evaluation = ctx.config.evaluation
    n = min(round(evaluation.test_fraction * len(candidates)), evaluation.max_test_structures)
    if n <= 0:
        return []
    rng = np.random.default_rng(ctx.seed("test-split"))
    chosen = rng.choice(len(candidates), size=n, replace=False)
    return sorted(candidates[int(i)] for i in chosen)
