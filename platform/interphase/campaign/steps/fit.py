"""Step 3, fit: one GP per subset and level on the campaign's labels.

The test split never enters a GP. ``refit`` (:mod:`.refit`) fits again with
the same machinery, only at the levels the selection gave new labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from interphase.campaign.context import StepContext
from interphase.campaign.steps.contract import StepOutputs, StoredModel
from interphase.db.session import transaction
from interphase.gpr.fit import fit_subsets, fittable, store_fits
from interphase.gpr.settings import GPFitSettings
from interphase.gpr.subsets import SubsetData, load_subsets


class FittedGP(StoredModel):
    """One GP the step fitted."""

    gpr_model_id: int
    subset_key: str
    n_structures: int = 0
    energy_mae_mev_per_atom: float | None = None


class Outputs(StepOutputs):
    """The GPs of each level after the step (refit: those it kept and those it fitted)."""

    gp_model_ids: dict[str, list[int]] = Field(default_factory=dict)
    fitted: dict[str, list[FittedGP]] = Field(default_factory=dict)
    refit_levels: list[str] = Field(default_factory=list)

    def note(self) -> str:
        return (
            ", ".join(f"{len(v)} GPs at {level}" for level, v in self.fitted.items())
            or "no new GPs"
        )


@dataclass(frozen=True)
class Inputs:
    """``fit`` reads no earlier step."""


def fit_settings(ctx: StepContext, subsets: list[SubsetData]) -> GPFitSettings:
    periodic = [(data.subset_key, any(data.pbc)) for data in subsets]
    return ctx.config.gp.fit_settings(ctx.seed("gp"), periodic)


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    return fit_levels(ctx, [route.level for route in ctx.config.routing], {})


def fit_levels(ctx: StepContext, levels: list[str], previous: dict[str, list[int]]) -> Outputs:
    """Fit the GPs of ``levels``; the other levels keep their GPs of ``previous``."""
    with transaction(ctx.url, read_only=True) as session:
        subsets = {
            level: load_subsets(
                session, level, ctx.campaign_id, exclude_structure_ids=set(ctx.test_ids)
            )
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
                map_fn=ctx.executor.map if ctx.config.executor.workers > 1 else None,
                progress=advance,
            )
    with transaction(ctx.url) as session:
        model_ids = dict(previous)
        summary: dict[str, list[FittedGP]] = {}
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
                FittedGP(
                    gpr_model_id=fit.gpr_model_id,
                    subset_key=fit.subset_key,
                    n_structures=fit.n_structures,
                    energy_mae_mev_per_atom=fit.metrics.get("validation_energy_mae_mev_per_atom"),
                )
                for fit in stored
            ]
        outputs = Outputs(gp_model_ids=model_ids, fitted=summary, refit_levels=levels)
        ctx.complete(session, outputs)
    return outputs
