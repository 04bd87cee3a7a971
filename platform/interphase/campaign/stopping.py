"""Stopping rules: checked after every iteration's summary and before a new iteration starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.config import CampaignConfig
from interphase.campaign.cost import level_cpu_hours
from interphase.campaign.steps.summary import IterationSummary
from interphase.db.models import Campaign, Iteration, Label, LabelingJob, LevelOfTheory


@dataclass
class StopDecision:
    """Which rule fired (None: keep going) and its numbers."""

    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def _last_summary(
    session: Session, campaign: Campaign, finished_iterations: int
) -> IterationSummary | None:
    """The summary of the last finished iteration (None before the first)."""
    if not finished_iterations:
        return None
    stored = session.scalar(
        select(Iteration.summary).where(
            Iteration.campaign_id == campaign.id, Iteration.index == finished_iterations - 1
        )
    )
    return IterationSummary.model_validate(stored or {})


def check_stopping(
    session: Session,
    campaign: Campaign,
    config: CampaignConfig,
    finished_iterations: int,
    running_seconds: float,
) -> StopDecision:
    """The first rule that fires: iterations, uncertainty, validation, budgets, time."""
    rules = config.stopping
    if finished_iterations >= rules.max_iterations:
        return StopDecision(
            "max_iterations",
            {"iterations": finished_iterations, "max_iterations": rules.max_iterations},
            f"ran its {rules.max_iterations} iterations",
        )
    last = _last_summary(session, campaign, finished_iterations)
    if rules.uncertain_fraction_below is not None and last is not None:
        fraction = last.pool_uncertain_fraction
        if fraction is not None and fraction < rules.uncertain_fraction_below:
            return StopDecision(
                "uncertain_fraction",
                {"fraction": fraction, "below": rules.uncertain_fraction_below},
                f"uncertain fraction {fraction:.2f} < {rules.uncertain_fraction_below:.2f}",
            )
    validation = None if last is None else last.validation
    if rules.validated and validation is not None and validation.runs and validation.passed:
        checks = sum(len(run.checks) for run in validation.runs)
        return StopDecision(
            "validated",
            {"runs": len(validation.runs), "checks": checks},
            f"all {checks} validation checks of {len(validation.runs)} suite runs passed",
        )
    for level_name, budget in rules.label_budget.items():
        count = session.scalar(
            select(func.count())
            .select_from(Label)
            .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
            .join(LabelingJob, Label.job_id == LabelingJob.id)
            .where(LevelOfTheory.name == level_name, LabelingJob.campaign_id == campaign.id)
        )
        if int(count or 0) >= budget:
            return StopDecision(
                "label_budget",
                {"level": level_name, "labels": int(count or 0), "budget": budget},
                f"{count} labels at {level_name} reached the budget of {budget}",
            )
    for level_name, hours in rules.cpu_hours_budget.items():
        level = session.scalar(select(LevelOfTheory).where(LevelOfTheory.name == level_name))
        if level is None:
            continue
        spent = level_cpu_hours(session, campaign.id, level)
        if spent >= hours:
            return StopDecision(
                "label_budget",
                {"level": level_name, "cpu_hours": spent, "budget_cpu_hours": hours},
                f"{spent:.2f} estimated CPU hours at {level_name} reached the budget of {hours}",
            )
    if rules.wall_clock_hours is not None and running_seconds >= rules.wall_clock_hours * 3600:
        return StopDecision(
            "wall_clock",
            {"seconds": running_seconds, "budget_hours": rules.wall_clock_hours},
            f"ran {running_seconds / 3600:.2f} h of its {rules.wall_clock_hours} h",
        )
    return StopDecision()
