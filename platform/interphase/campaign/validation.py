"""The campaign's validation: its suites on the iteration's model, recorded for the summary.

Runs inside the evaluate step, every ``validation.every`` iterations and in the
last one, on the model the train step saved. Each suite runs on each of its
heads (:func:`interphase.validation.run.validate_head`): the reference level's
values come from the database when any earlier model or campaign computed them,
and every run is recorded against the campaign and iteration.
"""

from __future__ import annotations

from typing import Any

from interphase.campaign.config import CampaignConfig
from interphase.validation.checks import Tolerance
from interphase.validation.suites import suite_named

#: What the iteration's summary keeps of each check (the run in validation_run has all).
SUMMARY_KEYS = ("name", "unit", "model", "reference", "difference", "passed")


def due(config: CampaignConfig, iteration: int) -> bool:
    """Whether the validation runs in ``iteration`` (0-based)."""
    rules = config.validation
    if not rules.suites:
        return False
    last = iteration == config.stopping.max_iterations - 1
    return last or (iteration + 1) % rules.every == 0


def tolerances(suite: str, values: dict[str, float]) -> dict[str, Tolerance]:
    """The config's tolerances as :class:`Tolerance`: fractions where the suite's are relative."""
    defaults = suite_named(suite).tolerances
    return {
        name: Tolerance(relative=value)
        if defaults[name].relative is not None
        else Tolerance(absolute=value)
        for name, value in values.items()
    }


def run_validation(
    config: CampaignConfig,
    model_path: str,
    *,
    url: str | None,
    campaign_id: int,
    iteration: int,
    progress: Any = None,
) -> dict[str, Any]:
    """Every suite on every head; ``{"runs": [...], "passed": bool}`` for the step's outputs."""
    from interphase.validation.run import validate_head

    runs = []
    for entry in config.validation.suites:
        for head in config.validation_heads(entry):
            outcome = validate_head(
                model_path,
                head,
                entry.suite,
                settings=entry.settings,
                tolerances=tolerances(entry.suite, entry.tolerances),
                campaign_id=campaign_id,
                iteration_index=iteration,
                url=url,
                progress=progress,
            )
            runs.append(
                {
                    "run_id": outcome.run_id,
                    "suite": outcome.suite,
                    "head": head,
                    "passed": outcome.passed,
                    "reference_cached": outcome.reference_cached,
                    "checks": [
                        {
                            key: value
                            for key, value in check.to_dict().items()
                            if key in SUMMARY_KEYS
                        }
                        for check in outcome.checks
                    ],
                }
            )
    return {"runs": runs, "passed": bool(runs) and all(run["passed"] for run in runs)}
