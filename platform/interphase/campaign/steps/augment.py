"""Step 6, augment: displaced copies of the reference structures, labeled by the GPs.

Uses exactly the GPs this iteration ended with (``refit``); the copies are
structures of the campaign with synthetic labels (never reference labels).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from interphase.campaign.context import StepContext
from interphase.campaign.records import StepName, step_outputs
from interphase.db.models import GPRModel
from interphase.db.session import transaction
from interphase.gpr.augment_db import augment_subsets
from interphase.units import mev_to_hartree


def run(ctx: StepContext) -> dict[str, Any]:
    config = ctx.config.augmentation
    results: dict[str, dict[str, int]] = {}
    with transaction(ctx.url) as session:
        if config.enabled:
            refit = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.refit)
            levels = config.levels or [route.level for route in ctx.config.routing]
            for k, level in enumerate(levels):
                ids = refit["gp_model_ids"].get(level, [])
                models = session.scalars(
                    select(GPRModel).where(GPRModel.id.in_(ids)).order_by(GPRModel.subset_key)
                ).all()
                if not models:
                    continue
                with ctx.computing():
                    done = augment_subsets(
                        session,
                        level,
                        copies=config.copies,
                        delta_angstrom=config.delta_angstrom,
                        std_filter_hartree_per_atom=None
                        if config.std_filter_mev_per_atom is None
                        else mev_to_hartree(config.std_filter_mev_per_atom),
                        seed=ctx.seed("augment", k),
                        models=models,
                    )
                results[level] = {
                    "n_references": sum(r.n_references for r in done),
                    "n_copies": sum(r.n_copies for r in done),
                    "n_kept": sum(r.n_kept for r in done),
                    "n_synthetic_labels": sum(r.n_new_labels for r in done),
                }
        outputs = {"levels": results, "enabled": config.enabled}
        ctx.complete(session, outputs)
    return outputs
