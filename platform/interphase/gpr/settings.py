"""How subset GPs are fitted: the one home of the GP fit settings and their defaults.

:class:`GPSearchSettings` holds what ``interphase gpr fit`` and a campaign's
``gp:`` section share (the campaign's section is a subclass,
:class:`interphase.campaign.config_sections.GPConfig`);
:class:`GPFitSettings` adds the seed and descriptors of one fit and is stored
with each model. A GP built directly (:class:`~interphase.gpr.gp.EnergyGradientGP`)
takes the same defaults.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.memory import OversizePolicy

__all__ = [
    "DEFAULT_RESTARTS",
    "DEFAULT_TRAINING_ITERATIONS",
    "GPFitSettings",
    "GPSearchSettings",
    "Restarts",
    "TrainingIterations",
]

#: Nelder–Mead iterations per restart of the hyperparameter search, and the restarts.
DEFAULT_TRAINING_ITERATIONS, DEFAULT_RESTARTS = 60, 3
#: Most iterations and restarts: far above real use, so reaching one means a typo.
MAX_TRAINING_ITERATIONS, MAX_RESTARTS = 100_000, 20

TrainingIterations = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_TRAINING_ITERATIONS,
        description="Nelder–Mead iterations per restart of each GP's hyperparameter search "
        f"(at most {MAX_TRAINING_ITERATIONS}).",
    ),
]
Restarts = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_RESTARTS,
        description=f"Hyperparameter search restarts (at most {MAX_RESTARTS}).",
    ),
]


class GPSearchSettings(BaseModel):
    """How long each GP searches its hyperparameters, and how much memory it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_iterations: TrainingIterations = DEFAULT_TRAINING_ITERATIONS
    restarts: Restarts = DEFAULT_RESTARTS
    memory_budget_gb: float | None = Field(
        default=None, gt=0, description="Memory per GP (GB); default 8 on CPU, 85 % of a GPU."
    )


class GPFitSettings(GPSearchSettings):
    """How each subset GP is fitted (stored with the model)."""

    seed: int = Field(default=0, description="Seed of the hyperparameters and validation split.")
    max_outputs: int | None = Field(
        default=None, ge=2, description="Cap on structures × (3N+1); default from the budget."
    )
    oversize: OversizePolicy = Field(
        default="subsample", description="Subset over the cap: 'subsample' or 'error'."
    )
    device: str | None = Field(default=None, description="'cuda' or 'cpu' (default: cuda if any).")
    descriptor: DescriptorSettings = Field(
        default_factory=lambda: DescriptorSettings(), description="Input of every subset's GP."
    )
    descriptor_by_subset: dict[str, DescriptorSettings] = Field(
        default_factory=dict, description="Per-subset descriptor overriding `descriptor`."
    )

    def descriptor_for(self, subset_key: str) -> DescriptorSettings:
        """The descriptor of one subset's GP: its override, or the shared one."""
        return self.descriptor_by_subset.get(subset_key, self.descriptor)
