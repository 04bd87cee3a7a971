"""Step 6, augment: displaced copies of the reference structures, labeled by the GPs.

Uses exactly the GPs this iteration ended with (``refit``); the copies are
structures of the campaign with synthetic labels (never reference labels).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from sqlalchemy import select

from interphase.campaign.context import StepContext
from interphase.campaign.steps import refit
from interphase.campaign.steps.contract import StepOutputs, StoredModel
from interphase.db.models import GPRModel
from interphase.db.session import transaction
from interphase.gpr.augment_db import augment_subsets
from interphase.units import mev_to_hartree


class AugmentedLevel(StoredModel):
    """One level's displaced copies and the synthetic labels its GPs gave them."""

    n_references: int = 0
    n_copies: int = 0
    n_kept: int = 0
    n_synthetic_labels: int = 0


class Outputs(StepOutputs):
    levels: dict[str, AugmentedLevel] = Field(default_factory=dict)
    enabled: bool = False

    def note(self) -> str:
        return (
            ", ".join(
                f"{v.n_synthetic_labels} synthetic labels at {level}"
                for level, v in self.levels.items()
            )
            or "off"
        )


@dataclass(frozen=True)
class Inputs:
    refit: refit.Outputs


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    config = ctx.config.augmentation
    results: dict[str, AugmentedLevel] = {}
    with transaction(ctx.url) as session:
        if config.enabled:
            levels = config.levels or [route.level for route in ctx.config.routing]
            for k, level in enumerate(levels):
                ids = inputs.refit.gp_model_ids.get(level, [])
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
                results[level] = AugmentedLevel(
                    n_references=sum(r.n_references for r in done),
                    n_copies=sum(r.n_copies for r in done),
                    n_kept=sum(r.n_kept for r in done),
                    n_synthetic_labels=sum(r.n_new_labels for r in done),
                )
        outputs = Outputs(levels=results, enabled=config.enabled)
        ctx.complete(session, outputs)
    return outputs
