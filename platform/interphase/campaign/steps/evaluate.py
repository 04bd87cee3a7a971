"""Step 9, evaluate: per-head errors on the fixed test split, and the next pool's uncertainty.

The test split was labeled like every structure but never fitted or trained
on. The candidate pool (what exploration just produced) is scored by the GPs
this iteration ended with; its uncertain fraction is what the stopping rule
watches and what must fall from iteration to iteration.
"""

from __future__ import annotations

from typing import Any

from interphase.campaign.context import StepContext
from interphase.campaign.records import (
    StepName,
    ensure_level,
    held_out_ids,
    step_outputs,
)
from interphase.campaign.routing import routed
from interphase.campaign.steps.select import models_by_subset, score_counts, store_scores
from interphase.db.session import transaction
from interphase.gpr.score import score_candidates
from interphase.models.artifact import load_model
from interphase.training.evaluate import database_examples, evaluate_model
from interphase.units import mev_to_hartree


def test_errors(ctx: StepContext, model_path: str | None) -> dict[str, Any]:
    """Errors of each head on the test split (meV/atom, meV/Å)."""
    if model_path is None:
        return {}
    model = load_model(model_path, "cpu")
    with transaction(ctx.url, read_only=True) as session:
        test_ids = held_out_ids(session, ctx.campaign_id)
        examples = database_examples(
            session, model, campaign_id=ctx.campaign_id, structure_ids=test_ids
        )
    if not examples:
        return {}
    with ctx.computing():
        evaluation = evaluate_model(model, examples)
    return {
        head: {
            "n_structures": metrics.n_energies,
            "energy_mae_mev_per_atom": metrics.energy_mae_mev_per_atom,
            "force_mae_mev_per_angstrom": metrics.force_mae_mev_per_angstrom,
        }
        for head, metrics in evaluation.metrics.heads.items()
    }


def run(ctx: StepContext) -> dict[str, Any]:
    with transaction(ctx.url, read_only=True) as session:
        trained = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.train)
    errors = test_errors(ctx, trained.get("model_path"))
    pool: dict[str, dict[str, Any]] = {}
    with transaction(ctx.url) as session:
        explored = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.explore)
        refit = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.refit)
        candidates = [int(i) for i in explored.get("candidate_ids", [])]
        test_ids = held_out_ids(session, ctx.campaign_id)
        for route in ctx.config.routing:
            level = ensure_level(session, ctx.config.level_spec(route.level))
            mine = [i for i in routed(session, route, candidates) if i not in test_ids]
            threshold_mev = ctx.config.selection.threshold(route.level)
            if mine:
                models = models_by_subset(session, refit["gp_model_ids"].get(route.level, []))
                with ctx.computing():
                    scores = score_candidates(session, mine, route.level, models=models)
                store_scores(
                    session, ctx, level.id, scores, mev_to_hartree(threshold_mev), set(), "pool"
                )
                session.flush()
            pool[route.level] = score_counts(session, ctx, level.id, "pool", threshold_mev)
        scored = sum(p["n_scored"] for p in pool.values())
        uncertain = sum(p["n_uncertain"] for p in pool.values())
        outputs = {
            "test_errors": errors,
            "pool": pool,
            "pool_uncertain_fraction": uncertain / scored if scored else None,
        }
        ctx.complete(session, outputs)
    return outputs
