"""Step 7, train: the multi-head network on the campaign's labels (one head per level).

Reference labels and (when configured) synthetic energies of the campaign,
never the test split; warm-started from the previous iteration's model. A
training run interrupted by a crash continues from its checkpoint on resume
(the same result as an uninterrupted run); a finished run whose step was not
recorded yet is taken as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from sqlalchemy import select

from interphase.campaign.context import StepContext
from interphase.campaign.records import StepName
from interphase.campaign.steps.contract import StepOutputs, stored_outputs
from interphase.db import membership
from interphase.db.models import Label, LevelOfTheory, ModelArtifact, TrainingRun
from interphase.db.session import transaction
from interphase.models.artifact import load_model
from interphase.models.multihead import MultiHeadPotential
from interphase.training.from_db import train_from_database
from interphase.training.reports import EpochReport, TrainingCallbacks


class NothingToTrainError(RuntimeError):
    """The campaign has no labels to train on."""


class Outputs(StepOutputs):
    """The training run, its model file and what it trained on."""

    training_run_id: int | None = None
    model_path: str | None = None
    heads: list[str] = Field(default_factory=list)
    n_labels: int = 0
    n_synthetic: int = 0
    warm_start: bool = False
    #: Per head, the run's metrics on its validation split.
    validation: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def note(self) -> str:
        return (
            f"run {self.training_run_id} on {self.n_labels} labels + "
            f"{self.n_synthetic} synthetic, heads {', '.join(self.heads)}"
        )


@dataclass(frozen=True)
class Inputs:
    """``train`` reads the campaign's labels; the warm start finds the last model itself."""


def previous_model(ctx: StepContext) -> MultiHeadPotential | None:
    """The model of the last iteration that trained one (warm start), or None."""
    if ctx.iteration == 0 or not ctx.config.training.warm_start:
        return None
    with transaction(ctx.url, read_only=True) as session:
        for index in range(ctx.iteration - 1, -1, -1):
            outputs = stored_outputs(session, ctx.campaign_id, index, StepName.train, Outputs)
            if outputs is not None and outputs.model_path:
                return load_model(outputs.model_path, "cpu")
    return None


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    with transaction(ctx.url, read_only=True) as session:
        heads = [
            name
            for name in (route.level for route in ctx.config.routing)
            if session.scalar(
                select(Label.id)
                .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
                .where(LevelOfTheory.name == name, membership.training_label(ctx.campaign_id))
                .limit(1)
            )
            is not None
        ]
        earlier = session.scalars(
            select(TrainingRun)
            .where(TrainingRun.iteration_id == ctx.iteration_id)
            .order_by(TrainingRun.id.desc())
        ).first()
        earlier_state = None if earlier is None else (earlier.id, earlier.status)
        epochs_before = 0 if earlier is None else earlier.epochs_completed
    if not heads:
        raise NothingToTrainError("no reference labels in the campaign: nothing to train on")
    settings = ctx.config.training.training_settings(ctx.seed("train"), heads, ctx.campaign_id)
    epochs = settings.epochs

    def on_epoch(report: EpochReport) -> None:
        ctx.progress("train: epoch", int(report.epoch), epochs)

    callbacks = TrainingCallbacks(on_epoch=on_epoch)
    if earlier_state is None or earlier_state[1] != "succeeded":
        ctx.progress("train: epoch", epochs_before, epochs)  # a resumed run starts there
    with ctx.computing():
        if earlier_state is not None and earlier_state[1] == "succeeded":
            run_id = earlier_state[0]
        elif earlier_state is not None:
            run_id, _ = train_from_database(
                ctx.url,
                settings,
                ctx.artifacts_dir,
                resume_run_id=earlier_state[0],
                callbacks=callbacks,
            )
        else:
            run_id, _ = train_from_database(
                ctx.url,
                settings,
                ctx.artifacts_dir,
                campaign_id=ctx.campaign_id,
                iteration_id=ctx.iteration_id,
                callbacks=callbacks,
                exclude_structure_ids=set(ctx.test_ids),
                initial_model=previous_model(ctx),
            )
    return _record(ctx, run_id, heads)


def _record(ctx: StepContext, run_id: int, heads: list[str]) -> Outputs:
    """Record the step with the training run's model and what it trained on."""
    with transaction(ctx.url) as session:
        training = session.get_one(TrainingRun, run_id)
        artifact = session.scalar(
            select(ModelArtifact).where(ModelArtifact.training_run_id == run_id)
        )
        validation = {
            head: splits.get("validation", {})
            for head, splits in (training.metrics or {}).get("heads", {}).items()
        }
        outputs = Outputs(
            training_run_id=run_id,
            model_path=None if artifact is None else artifact.path,
            heads=heads,
            n_labels=len(training.label_ids),
            n_synthetic=len(training.synthetic_label_ids),
            warm_start=ctx.iteration > 0 and ctx.config.training.warm_start,
            validation=validation,
        )
        ctx.complete(session, outputs)
    return outputs
