"""Step 4, select: score the candidates with this iteration's GPs, label the uncertain.

Per level in ``selected`` mode, every routed candidate the campaign has not
picked at that level yet is scored by its subset's GP from the ``fit`` step (no GP:
maximally uncertain). Every score is stored (``candidate_score``, stage
``select``); those above the level's threshold are uncertain, and the most
uncertain of them, spread out by RMSD, are picked: those labeled already reuse
their label, the rest become ``uncertainty`` jobs.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import (
    StepName,
    ensure_level,
    held_out_ids,
    step_outputs,
)
from interphase.campaign.routing import routed
from interphase.campaign.steps import jobs
from interphase.db.models import CandidateScore, GPRModel, JobReason
from interphase.db.session import transaction
from interphase.gpr.score import CandidateScores, score_candidates
from interphase.gpr.select import pick_uncertain
from interphase.labeling.uncertainty import uncertainty_detail
from interphase.units import HARTREE_TO_MEV, mev_to_hartree


def models_by_subset(session: Session, model_ids: list[int]) -> dict[str, GPRModel]:
    rows = session.scalars(select(GPRModel).where(GPRModel.id.in_(model_ids))).all()
    return {row.subset_key: row for row in rows}


def store_scores(
    session: Session,
    ctx: StepContext,
    level_id: int,
    scores: CandidateScores,
    threshold_hartree: float,
    picked: set[int],
    stage: str,
) -> None:
    """Record every candidate's score, whether it is uncertain and whether it was picked."""
    std = scores.std_per_atom_hartree
    for i, structure_id in enumerate(scores.structure_ids):
        value = float(std[i])
        session.add(
            CandidateScore(
                campaign_id=ctx.campaign_id,
                iteration_id=ctx.iteration_id,
                structure_id=int(structure_id),
                level_id=level_id,
                gpr_model_id=scores.gpr_model_ids[i],
                std_per_atom_hartree=value if np.isfinite(value) else None,
                stage=stage,
                uncertain=bool(not np.isfinite(value) or value > threshold_hartree),
                picked=i in picked,
            )
        )


def score_counts(
    session: Session, ctx: StepContext, level_id: int, stage: str, threshold_mev: float
) -> dict[str, Any]:
    """Counts and the std distribution (meV/atom) of the stored scores of one stage."""
    rows = session.execute(
        select(
            CandidateScore.std_per_atom_hartree, CandidateScore.uncertain, CandidateScore.picked
        ).where(
            CandidateScore.iteration_id == ctx.iteration_id,
            CandidateScore.level_id == level_id,
            CandidateScore.stage == stage,
        )
    ).all()
    finite = np.array([r[0] for r in rows if r[0] is not None]) * HARTREE_TO_MEV
    uncertain = sum(bool(r[1]) for r in rows)
    return {
        "n_scored": len(rows),
        "n_uncertain": uncertain,
        "uncertain_fraction": uncertain / len(rows) if rows else None,
        "n_without_gp": sum(r[0] is None for r in rows),
        "n_picked": sum(bool(r[2]) for r in rows),
        "median_std_mev_per_atom": float(np.median(finite)) if finite.size else None,
        "threshold_mev_per_atom": threshold_mev,
    }


def picked_ids(session: Session, ctx: StepContext, level_id: int) -> list[int]:
    """The structures this iteration's selection picked at the level."""
    return [
        int(i)
        for i in session.scalars(
            select(CandidateScore.structure_id).where(
                CandidateScore.iteration_id == ctx.iteration_id,
                CandidateScore.level_id == level_id,
                CandidateScore.stage == "select",
                CandidateScore.picked.is_(True),
            )
        )
    ]


def scored_already(session: Session, ctx: StepContext, stage: str) -> bool:
    """Whether this iteration's scores of ``stage`` are stored (a resumed step)."""
    return (
        session.scalar(
            select(CandidateScore.id)
            .where(CandidateScore.iteration_id == ctx.iteration_id, CandidateScore.stage == stage)
            .limit(1)
        )
        is not None
    )


def run(ctx: StepContext) -> dict[str, Any]:
    selection = ctx.config.selection
    with transaction(ctx.url) as session:
        if not scored_already(session, ctx, "select"):  # scores and jobs commit together
            _score_and_queue(session, ctx)
    jobs.drain(ctx, "label uncertain")
    result = jobs.outcome(ctx, JobReason.uncertainty)
    with transaction(ctx.url) as session:
        levels: dict[str, dict[str, Any]] = {}
        for route in ctx.config.routing:
            if route.mode == "selected":
                level = ensure_level(session, ctx.config.level_spec(route.level))
                threshold = selection.threshold(route.level)
                levels[route.level] = score_counts(session, ctx, level.id, "select", threshold)
                done = result["states"].get(route.level, {})
                levels[route.level]["n_succeeded"] = done.get("succeeded", 0)
                picks = jobs.sources(session, ctx, level, picked_ids(session, ctx, level.id))
                levels[route.level].update(
                    n_computed=picks["computed"],
                    n_reused=picks["reused"],
                    n_new_labels=picks["computed"] + picks["reused"],
                )
        outputs = {"levels": levels, **result}
        ctx.complete(session, outputs)
    return outputs


def _score_and_queue(session: Session, ctx: StepContext) -> None:
    selection = ctx.config.selection
    generated = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.generate)
    fitted = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.fit)
    candidates = [int(i) for i in generated["candidate_ids"]]
    test_ids = held_out_ids(session, ctx.campaign_id)
    for route in ctx.config.routing:
        if route.mode != "selected":
            continue
        level = ensure_level(session, ctx.config.level_spec(route.level))
        pool = [i for i in routed(session, route, candidates) if i not in test_ids]
        pool = jobs.without_picks(session, ctx, level, pool)
        if not pool:
            continue
        models = models_by_subset(session, fitted["gp_model_ids"].get(route.level, []))
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
