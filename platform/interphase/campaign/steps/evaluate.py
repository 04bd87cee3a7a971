"""Step 9, evaluate: per-head test errors, validation suites, and the next pool's uncertainty.

The test split was labeled like every structure but never fitted or trained
on. The candidate pool (what exploration just produced) is scored by the GPs
this iteration ended with; its uncertain fraction is what the stopping rule
watches and what must fall from iteration to iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from sqlalchemy.orm import Session

from interphase.campaign import validation as campaign_validation
from interphase.campaign.context import StepContext
from interphase.campaign.records import ensure_level
from interphase.campaign.routing import routed
from interphase.campaign.steps import explore, refit, train
from interphase.campaign.steps.contract import StepOutputs, StoredModel
from interphase.campaign.steps.scores import (
    ScoreCounts,
    models_by_subset,
    score_counts,
    store_scores,
)
from interphase.db.models import TrainingRun
from interphase.db.session import transaction
from interphase.gpr.score import score_candidates
from interphase.models.artifact import load_model
from interphase.training.evaluate import ModelEvaluation, database_examples, evaluate_model
from interphase.training.metrics import write_parity
from interphase.units import mev_to_hartree

#: Beside the run's ``parity.npz``: the model's predictions on the test split (split "test").
TEST_PARITY_FILE = "test-parity.npz"


class TestError(StoredModel):
    """One head's errors on the test split."""

    __test__ = False  # not a pytest class

    n_structures: int = 0
    energy_mae_mev_per_atom: float | None = None
    force_mae_mev_per_angstrom: float | None = None


class ValidationCheck(StoredModel):
    """What the summary keeps of one check (``campaign.validation.SUMMARY_KEYS``)."""

    name: str
    unit: str | None = None
    model: float | None = None
    reference: float | None = None
    difference: float | None = None
    passed: bool = False


class ValidationRun(StoredModel):
    """One suite on one head."""

    run_id: int | None = None
    suite: str
    head: str
    passed: bool = False
    reference_cached: bool = False
    checks: list[ValidationCheck] = Field(default_factory=list)


class Validation(StoredModel):
    """The validation suites' runs of an iteration."""

    runs: list[ValidationRun] = Field(default_factory=list)
    passed: bool = False


class Outputs(StepOutputs):
    """Test errors per head, the validation, and the next pool's uncertainty."""

    test_errors: dict[str, TestError] = Field(default_factory=dict)
    test_parity_path: str | None = None
    pool: dict[str, ScoreCounts] = Field(default_factory=dict)
    pool_uncertain_fraction: float | None = None
    validation: Validation | None = None

    def note(self) -> str:
        errors = ", ".join(
            f"{head} {_fmt(v.energy_mae_mev_per_atom)} meV/atom"
            for head, v in self.test_errors.items()
        )
        fraction = self.pool_uncertain_fraction
        percent = None if fraction is None else 100 * fraction
        runs = [] if self.validation is None else self.validation.runs
        checked = (
            f"; validation {sum(r.passed for r in runs)}/{len(runs)} suite runs passed"
            if runs
            else ""
        )
        return f"test {errors or '–'}; pool {_fmt(percent, '.0f')}% uncertain{checked}"


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


@dataclass(frozen=True)
class Inputs:
    train: train.Outputs
    explore: explore.Outputs
    refit: refit.Outputs


def evaluate_test_split(ctx: StepContext, model_path: str | None) -> ModelEvaluation | None:
    """The model on the campaign's test split; None without a model or test structures."""
    if model_path is None:
        return None
    model = load_model(model_path, "cpu")
    with transaction(ctx.url, read_only=True) as session:
        examples = database_examples(
            session, model, campaign_id=ctx.campaign_id, structure_ids=set(ctx.test_ids)
        )
    if not examples:
        return None
    with ctx.computing():
        return evaluate_model(model, examples)


def test_errors(evaluation: ModelEvaluation | None) -> dict[str, TestError]:
    """Errors of each head on the test split (meV/atom, meV/Å)."""
    if evaluation is None:
        return {}
    return {
        head: TestError(
            n_structures=metrics.n_energies,
            energy_mae_mev_per_atom=metrics.energy_mae_mev_per_atom,
            force_mae_mev_per_angstrom=metrics.force_mae_mev_per_angstrom,
        )
        for head, metrics in evaluation.metrics.heads.items()
    }


def write_test_parity(
    ctx: StepContext, training_run_id: int | None, evaluation: ModelEvaluation | None
) -> Path | None:
    """The test split's parity file, in the training run's folder (``training/run-<id>/``)."""
    if training_run_id is None or evaluation is None:
        return None
    folder = ctx.artifacts_dir / "training" / f"run-{training_run_id}"
    return write_parity(folder / TEST_PARITY_FILE, {"test": evaluation.parity}).resolve()


def record_test_parity(session: Session, training_run_id: int, path: Path) -> None:
    """Name the file in the run's metrics, where the dashboard finds its parity data."""
    run = session.get_one(TrainingRun, training_run_id)
    run.metrics = {**(run.metrics or {}), "test_parity_path": str(path)}


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    model_path = inputs.train.model_path
    evaluation = evaluate_test_split(ctx, model_path)
    training_run_id = inputs.train.training_run_id
    test_parity = write_test_parity(ctx, training_run_id, evaluation)
    validation = None
    if model_path and campaign_validation.due(ctx.config, ctx.iteration):
        with ctx.computing():
            validation = campaign_validation.run_validation(
                ctx.config,
                model_path,
                url=ctx.url,
                campaign_id=ctx.campaign_id,
                iteration=ctx.iteration,
            )
    with transaction(ctx.url) as session:
        pool = _score_pool(session, ctx, inputs)
        scored = sum(p.n_scored for p in pool.values())
        uncertain = sum(p.n_uncertain for p in pool.values())
        if training_run_id is not None and test_parity is not None:
            record_test_parity(session, training_run_id, test_parity)
        outputs = Outputs(
            test_errors=test_errors(evaluation),
            test_parity_path=None if test_parity is None else str(test_parity),
            pool=pool,
            pool_uncertain_fraction=uncertain / scored if scored else None,
            validation=None if validation is None else Validation.model_validate(validation),
        )
        ctx.complete(session, outputs)
    return outputs


def _score_pool(session: Session, ctx: StepContext, inputs: Inputs) -> dict[str, ScoreCounts]:
    """The explored candidates scored by the iteration's final GPs (stage ``pool``)."""
    pool: dict[str, ScoreCounts] = {}
    candidates = inputs.explore.candidate_ids
    test_ids = ctx.test_ids
    for route in ctx.config.routing:
        level = ensure_level(session, ctx.config.level_spec(route.level))
        mine = [i for i in routed(session, route, candidates) if i not in test_ids]
        threshold_mev = ctx.config.selection.threshold(route.level)
        if mine:
            models = models_by_subset(session, inputs.refit.gp_model_ids.get(route.level, []))
            with ctx.computing():
                scores = score_candidates(session, mine, route.level, models=models)
            store_scores(
                session, ctx, level.id, scores, mev_to_hartree(threshold_mev), set(), "pool"
            )
            session.flush()
        pool[route.level] = score_counts(session, ctx, level.id, "pool", threshold_mev)
    return pool
