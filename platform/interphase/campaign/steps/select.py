"""Step 4, select: score the candidates with this iteration's GPs, label the uncertain.

Per level in ``selected`` mode, every routed candidate the campaign has not
picked at that level yet is scored by its subset's GP from the ``fit`` step (no GP:
maximally uncertain). Every score is stored (``candidate_score``, stage
``select``); those above the level's threshold are uncertain, and the most
uncertain of them, spread out by RMSD, are picked: those labeled already reuse
their label, the rest become ``uncertainty`` jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import ensure_level
from interphase.campaign.routing import routed
from interphase.campaign.steps import fit, generate, jobs
from interphase.campaign.steps.contract import StepOutputs
from interphase.campaign.steps.jobs import FailedJob, JobOutcome
from interphase.campaign.steps.scores import (
    ScoreCounts,
    models_by_subset,
    picked_ids,
    score_counts,
    scored_already,
    store_scores,
)
from interphase.db.models import JobReason
from interphase.db.session import transaction
from interphase.gpr.score import CandidateScores, score_candidates
from interphase.gpr.select import pick_uncertain
from interphase.labeling.uncertainty import uncertainty_detail
from interphase.units import mev_to_hartree


class SelectedLevel(ScoreCounts):
    """One level's scores, and what became of its picks."""

    n_succeeded: int = 0
    n_computed: int = 0
    n_reused: int = 0
    #: Absent from steps recorded before labels were reused (then: the jobs succeeded).
    n_new_labels: int | None = None

    @property
    def new_labels(self) -> int:
        """Labels the selection gave the level."""
        return self.n_succeeded if self.n_new_labels is None else self.n_new_labels


class Outputs(StepOutputs):
    """Per level in ``selected`` mode: scores and picks; the uncertainty jobs' outcome."""

    levels: dict[str, SelectedLevel] = Field(default_factory=dict)
    states: dict[str, dict[str, int]] = Field(default_factory=dict)
    failed: list[FailedJob] = Field(default_factory=list)
    n_jobs: int = 0
    n_succeeded: int = 0

    def note(self) -> str:
        picks = ", ".join(
            f"{level}: {v.n_uncertain}/{v.n_scored} uncertain, {v.n_picked} picked"
            + (f" ({v.n_reused} labeled already)" if v.n_reused else "")
            for level, v in self.levels.items()
        )
        per_level = JobOutcome(states=self.states).states_line()
        return f"{picks}; {per_level or 'no jobs'}"


@dataclass(frozen=True)
class Inputs:
    generate: generate.Outputs
    fit: fit.Outputs


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    selection = ctx.config.selection
    with transaction(ctx.url) as session:
        if not scored_already(session, ctx, "select"):  # scores and jobs commit together
            _score_and_queue(session, ctx, inputs)
    jobs.drain(ctx, "label uncertain")
    result = jobs.outcome(ctx, JobReason.uncertainty)
    with transaction(ctx.url) as session:
        levels: dict[str, SelectedLevel] = {}
        for route in ctx.config.routing:
            if route.mode == "selected":
                level = ensure_level(session, ctx.config.level_spec(route.level))
                threshold = selection.threshold(route.level)
                counts = score_counts(session, ctx, level.id, "select", threshold)
                picks = jobs.sources(session, ctx, level, picked_ids(session, ctx, level.id))
                levels[route.level] = SelectedLevel(
                    **dict(counts),
                    n_succeeded=result.states.get(route.level, {}).get("succeeded", 0),
                    n_computed=picks.computed,
                    n_reused=picks.reused,
                    n_new_labels=picks.computed + picks.reused,
                )
        outputs = Outputs(levels=levels, **dict(result))
        ctx.complete(session, outputs)
    return outputs


def _score_and_queue(session: Session, ctx: StepContext, inputs: Inputs) -> None:
    selection = ctx.config.selection
    candidates = inputs.generate.candidate_ids
    test_ids = ctx.test_ids
    for route in ctx.config.routing:
        if route.mode != "selected":
            continue
        level = ensure_level(session, ctx.config.level_spec(route.level))
        pool = [i for i in routed(session, route, candidates) if i not in test_ids]
        pool = jobs.without_picks(session, ctx, level, pool)
        if not pool:
            continue
        models = models_by_subset(session, inputs.fit.gp_model_ids.get(route.level, []))
        with ctx.computing():
            scores = score_candidates(session, pool, route.level, models=models)
        threshold = mev_to_hartree(selection.threshold(route.level))
        most, spread = selection.max_picks_per_level, selection.min_rmsd_angstrom
        picked = pick_uncertain(
            scores, threshold_per_atom_hartree=threshold, max_count=most, min_rmsd_angstrom=spread
        )
        store_scores(session, ctx, level.id, scores, threshold, {int(i) for i in picked}, "select")
        row_of = {int(scores.structure_ids[i]): int(i) for i in picked}
        detail = partial(_detail, scores, row_of, threshold, spread)
        jobs.request(
            session, ctx, level, list(row_of), reason=JobReason.uncertainty, reason_detail=detail
        )


def _detail(
    scores: CandidateScores,
    row_of: dict[int, int],
    threshold_hartree: float,
    spread_angstrom: float,
    structure_id: int,
) -> dict[str, Any]:
    """The ``reason_detail`` of the uncertainty job of a picked structure."""
    return uncertainty_detail(scores, row_of[structure_id], threshold_hartree, spread_angstrom)
