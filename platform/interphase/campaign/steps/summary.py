"""Step 10, summary: one record of what the iteration did, for `campaign show` and the dashboard."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from interphase.campaign.context import StepContext
from interphase.campaign.records import STEP_ORDER, StepName, step_outputs, steps_of
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


def label_sources(label: dict[str, Any], select_out: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per level, the labels this iteration computed (its own jobs) and reused (existing)."""
    sources: dict[str, dict[str, int]] = {}
    for level, counts in label.get("sources", {}).items():
        sources[level] = {"computed": counts["computed"], "reused": counts["reused"]}
    for level, counts in select_out.get("levels", {}).items():
        both = sources.setdefault(level, {"computed": 0, "reused": 0})
        both["computed"] += counts.get("n_computed", 0)
        both["reused"] += counts.get("n_reused", 0)
    return sources


def run(ctx: StepContext) -> dict[str, Any]:
    with transaction(ctx.url) as session:
        outputs: dict[str, dict[str, Any]] = {
            step.value: step_outputs(session, ctx.campaign_id, ctx.iteration, step)
            for step in STEP_ORDER
            if step != StepName.summary
        }
        jobs = session.execute(
            select(LevelOfTheory.name, LabelingJob.state, func.count())
            .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
            .where(LabelingJob.iteration_id == ctx.iteration_id)
            .group_by(LevelOfTheory.name, LabelingJob.state)
        ).all()
        jobs_by_level: dict[str, dict[str, int]] = {}
        for level, state, count in jobs:
            jobs_by_level.setdefault(level, {})[JobState(state).value] = int(count)
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
            row.name: {"seconds": row.seconds, "compute_seconds": row.compute_seconds}
            for row in steps_of(session, ctx.campaign_id)
            if row.iteration_index == ctx.iteration and row.seconds is not None
        }
        generated, select_out = outputs["generate"], outputs["select"]
        summary = {
            "iteration": ctx.iteration,
            "structures_by_generator": generated.get("by_generator", {}),
            "n_candidates": len(generated.get("candidate_ids", [])),
            "n_explored_candidates": len(generated.get("explored_ids", [])),
            "n_test": len(generated.get("test_ids", [])),
            "jobs": jobs_by_level,
            "labels_total": {name: int(n) for name, n in labels},
            "label_sources": label_sources(outputs["label"], select_out),
            "gps": int(n_gps or 0),
            "selection": select_out.get("levels", {}),
            "failed_jobs": outputs["label"].get("failed", []) + select_out.get("failed", []),
            "synthetic_labels": int(n_synthetic or 0),
            "training_run_id": outputs["train"].get("training_run_id"),
            "test_errors": outputs["evaluate"].get("test_errors", {}),
            "validation": outputs["evaluate"].get("validation"),
            "pool": outputs["evaluate"].get("pool", {}),
            "pool_uncertain_fraction": outputs["evaluate"].get("pool_uncertain_fraction"),
            "exploration": {
                "runs": outputs["explore"].get("n_runs", 0),
                "unphysical": outputs["explore"].get("n_unphysical", 0),
                "candidates": len(outputs["explore"].get("candidate_ids", [])),
            },
            "steps": steps,
        }
        iteration = session.get_one(Iteration, ctx.iteration_id)
        iteration.summary, iteration.status, iteration.finished_at = summary, "succeeded", utcnow()
        ctx.complete(session, summary)
    return summary
