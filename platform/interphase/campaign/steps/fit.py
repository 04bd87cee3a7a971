"""Steps 3 and 5, fit and refit: one GP per subset and level on the campaign's labels.

The test split never enters a GP. ``refit`` fits again only the levels that
the selection gave new labels; the others keep the GPs of ``fit``.
"""

from __future__ import annotations

from typing import Any

from interphase.campaign.context import StepContext
from interphase.campaign.records import StepName, held_out_ids, step_outputs
from interphase.db.session import transaction
from interphase.gpr.fit import GPFitSettings, fit_subsets, fittable, store_fits
from interphase.gpr.subsets import SubsetData, load_subsets


def fit_settings(ctx: StepContext, subsets: list[SubsetData]) -> GPFitSettings:
    gp = ctx.config.gp
    by_subset = {
        data.subset_key: gp.descriptor_periodic if any(data.pbc) else gp.descriptor_molecular
        for data in subsets
    }
    return GPFitSettings(
        training_iterations=gp.training_iterations,
        restarts=gp.restarts,
        memory_budget_gb=gp.memory_budget_gb,
        seed=ctx.seed("gp"),
        descriptor=gp.descriptor_molecular,
        descriptor_by_subset=by_subset,
    )


def _new_labels(picks: dict[str, Any]) -> int:
    """Labels the selection gave a level (steps recorded before reuse: jobs succeeded)."""
    return int(picks.get("n_new_labels", picks.get("n_succeeded")) or 0)


def run(ctx: StepContext) -> dict[str, Any]:
    levels = [route.level for route in ctx.config.routing]
    previous: dict[str, list[int]] = {}
    if ctx.step == StepName.refit:
        with transaction(ctx.url, read_only=True) as session:
            fitted_before = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.fit)
            picks = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.select)
        previous = {k: list(v) for k, v in fitted_before["gp_model_ids"].items()}
        levels = [lvl for lvl in levels if _new_labels(picks.get("levels", {}).get(lvl, {}))]
    with transaction(ctx.url, read_only=True) as session:
        test_ids = held_out_ids(session, ctx.campaign_id)
        subsets = {
            level: load_subsets(session, level, ctx.campaign_id, exclude_structure_ids=test_ids)
            for level in levels
        }
    total = sum(len(fittable(s)) for s in subsets.values())
    done = 0
    fitted = {}
    for level, level_subsets in subsets.items():

        def advance(key: str) -> None:
            nonlocal done
            done += 1
            ctx.progress(f"{ctx.step.value}: GPs fitted", done, total)

        with ctx.computing():
            fitted[level] = fit_subsets(
                level_subsets,
                fit_settings(ctx, level_subsets),
                map_fn=ctx.executor.map if ctx.config.gp.workers > 1 else None,
                progress=advance,
            )
    with transaction(ctx.url) as session:
        model_ids = dict(previous)
        summary: dict[str, list[dict[str, Any]]] = {}
        for level, level_fits in fitted.items():
            stored = store_fits(
                session,
                level,
                level_fits,
                campaign_id=ctx.campaign_id,
                iteration_id=ctx.iteration_id,
            )
            model_ids[level] = [fit.gpr_model_id for fit in stored]
            summary[level] = [
                {
                    "gpr_model_id": fit.gpr_model_id,
                    "subset_key": fit.subset_key,
                    "n_structures": fit.n_structures,
                    "energy_mae_mev_per_atom": fit.metrics.get(
                        "validation_energy_mae_mev_per_atom"
                    ),
                }
                for fit in stored
            ]
        outputs = {"gp_model_ids": model_ids, "fitted": summary, "refit_levels": levels}
        ctx.complete(session, outputs)
    return outputs
