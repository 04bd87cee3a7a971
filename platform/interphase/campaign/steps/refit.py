"""Step 5, refit: the GPs again, at the levels the selection gave new labels.

The other levels keep the GPs of ``fit``; the outputs list the GPs of every
level this iteration ends with (what ``augment`` and ``evaluate`` use).
"""

from __future__ import annotations

from dataclasses import dataclass

from interphase.campaign.context import StepContext
from interphase.campaign.steps import fit, select

Outputs = fit.Outputs


@dataclass(frozen=True)
class Inputs:
    fit: fit.Outputs
    select: select.Outputs


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    previous = {level: list(ids) for level, ids in inputs.fit.gp_model_ids.items()}
    levels = [
        route.level
        for route in ctx.config.routing
        if route.level in inputs.select.levels and inputs.select.levels[route.level].new_labels
    ]
    return fit.fit_levels(ctx, levels, previous)
