"""Step 10, summary: one record of what the iteration did, for `campaign show` and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import steps_of
from interphase.campaign.steps import evaluate, explore, generate, label, train
from interphase.campaign.steps import select as select_step
from interphase.campaign.steps.contract import StepOutputs, StoredModel
from interphase.campaign.steps.evaluate import TestError, Validation
from interphase.campaign.steps.jobs import FailedJob
from interphase.campaign.steps.scores import ScoreCounts
from interphase.db import membership
from interphase.db.models import (
    GPRModel,
    Iteration,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    SyntheticLabel,
    utcnow,
)
from interphase.db.session import transaction


class LabelSource(StoredModel):
    """A level's labels of the iteration: computed by its own jobs, or reused."""

    computed: int = 0
    reused: int = 0


class Exploration(StoredModel):
    runs: int = 0
    unphysical: int = 0
    candidates: int = 0


class StepTime(StoredModel):
    seconds: float | None = None
    compute_seconds: float | None = None


class IterationSummary(StepOutputs):
    """One record of what the iteration did (``iteration.summary``, and the step's outputs).

    Every field has a default: summaries of older versions lack some of them.
    """

    iteration: int = 0
    structures_by_generator: dict[str, int] = Field(default_factory=dict)
    n_candidates: int = 0
    n_explored_candidates: int = 0
    n_test: int = 0
    #: Per level, this iteration's jobs by state.
    jobs: dict[str, dict[str, int]] = Field(default_factory=dict)
    labels_total: dict[str, int] = Field(default_factory=dict)
    label_sources: dict[str, LabelSource] = Field(default_factory=dict)
    gps: int = 0
    selection: dict[str, select_step.SelectedLevel] = Field(default_factory=dict)
    failed_jobs: list[FailedJob] = Field(default_factory=list)
    synthetic_labels: int = 0
    training_run_id: int | None = None
    test_errors: dict[str, TestError] = Field(default_factory=dict)
    validation: Validation | None = None
    pool: dict[str, ScoreCounts] = Field(default_factory=dict)
    pool_uncertain_fraction: float | None = None
    exploration: Exploration = Field(default_factory=Exploration)
    steps: dict[str, StepTime] = Field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """The iteration's time: its steps' seconds."""
        return sum((step.seconds or 0.0) for step in self.steps.values())


Outputs = IterationSummary


@dataclass(frozen=True)
class Inputs:
    generate: generate.Outputs
    label: label.Outputs
    select: select_step.Outputs
    train: train.Outputs
    explore: explore.Outputs
    evaluate: evaluate.Outputs


def label_sources(label: label.Outputs, select_out: select_step.Outputs) -> dict[str, LabelSource]:
    """Per level, the labels this iteration computed (its own jobs) and reused (existing)."""
    sources: dict[str, LabelSource] = {}
    for level, counts in label.sources.items():
        sources[level] = LabelSource(computed=counts.computed, reused=counts.reused)
    for level, picks in select_out.levels.items():
        both = sources.setdefault(level, LabelSource())
        both.computed += picks.n_computed
        both.reused += picks.n_reused
    return sources


def _jobs_by_level(session: Session, ctx: StepContext) -> dict[str, dict[str, int]]:
    """Per level, the iteration's jobs by state."""
    jobs = session.execute(
        select(LevelOfTheory.name, LabelingJob.state, func.count())
        .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
        .where(LabelingJob.iteration_id == ctx.iteration_id)
        .group_by(LevelOfTheory.name, LabelingJob.state)
    ).all()
    jobs_by_level: dict[str, dict[str, int]] = {}
    for level, state, count in jobs:
        jobs_by_level.setdefault(level, {})[JobState(state).value] = int(count)
    return jobs_by_level


def run(ctx: StepContext, inputs: Inputs) -> IterationSummary:
    with transaction(ctx.url) as session:
        jobs_by_level = _jobs_by_level(session, ctx)
        labels = session.execute(
            select(LevelOfTheory.name, func.count())
            .select_from(Label)
            .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
            .where(membership.training_label(ctx.campaign_id))
            .group_by(LevelOfTheory.name)
        ).all()
        n_gps = session.scalar(
            select(func.count())
            .select_from(GPRModel)
            .where(GPRModel.iteration_id == ctx.iteration_id)
        )
        n_synthetic = session.scalar(
            select(func.count())
            .select_from(SyntheticLabel)
            .join(GPRModel, SyntheticLabel.gpr_model_id == GPRModel.id)
            .where(GPRModel.iteration_id == ctx.iteration_id)
        )
        steps = {
            row.name: StepTime(seconds=row.seconds, compute_seconds=row.compute_seconds)
            for row in steps_of(session, ctx.campaign_id)
            if row.iteration_index == ctx.iteration and row.seconds is not None
        }
        generated, select_out, evaluated = inputs.generate, inputs.select, inputs.evaluate
        summary = IterationSummary(
            iteration=ctx.iteration,
            structures_by_generator=generated.by_generator,
            n_candidates=len(generated.candidate_ids),
            n_explored_candidates=len(generated.explored_ids),
            n_test=len(generated.test_ids),
            jobs=jobs_by_level,
            labels_total={name: int(n) for name, n in labels},
            label_sources=label_sources(inputs.label, select_out),
            gps=int(n_gps or 0),
            selection=select_out.levels,
            failed_jobs=inputs.label.failed + select_out.failed,
            synthetic_labels=int(n_synthetic or 0),
            training_run_id=inputs.train.training_run_id,
            test_errors=evaluated.test_errors,
            validation=evaluated.validation,
            pool=evaluated.pool,
            pool_uncertain_fraction=evaluated.pool_uncertain_fraction,
            exploration=Exploration(
                runs=inputs.explore.n_runs,
                unphysical=inputs.explore.n_unphysical,
                candidates=len(inputs.explore.candidate_ids),
            ),
            steps=steps,
        )
        iteration = session.get_one(Iteration, ctx.iteration_id)
        iteration.status, iteration.finished_at = "succeeded", utcnow()
        iteration.summary = summary.model_dump(mode="json")
        ctx.complete(session, summary)
    return summary
