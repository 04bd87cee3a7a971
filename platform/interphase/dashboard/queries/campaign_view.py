"""One campaign for its page: iterations, uncertainty, labels, learning curve, job outcomes.

Everything is read from the tables the campaign loop writes while it runs
(``campaign_step``, ``candidate_score``, ``labeling_job``, ``label``), not from
the iteration summary alone, so an iteration still running shows what it has
done so far.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.loop import STEP_ORDER
from interphase.campaign.steps import evaluate
from interphase.dashboard.queries.campaigns import CurrentStep, latest_moment, running_steps
from interphase.dashboard.queries.scores import (
    ScoreDistribution,
    level_names,
    score_distribution,
    thresholds_mev_per_atom,
)
from interphase.dashboard.templating import as_utc
from interphase.db.models import (
    Campaign,
    CampaignStep,
    CampaignStructure,
    Iteration,
    JobState,
    Label,
    LabelingJob,
    StepState,
)


@dataclass(frozen=True)
class CampaignHeader:
    """The campaign row as the page shows it."""

    id: int
    name: str
    state: str
    stop_reason: str | None
    stop_message: str | None
    stop_requested: bool
    lock_holder: str | None
    lock_heartbeat_at: datetime | None
    run_seconds: float
    created_at: datetime
    updated_at: datetime
    levels: list[str]  # routed levels, in the configuration's order
    thresholds_mev_per_atom: dict[str, float]
    current_step: CurrentStep | None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def last_update(self) -> datetime:
        """The campaign row's update or its running step's newest progress, whichever is later."""
        if self.current_step is None:
            return self.updated_at
        return latest_moment(self.updated_at, self.current_step.last_activity)


@dataclass(frozen=True)
class IterationLine:
    """One iteration in the campaign's table."""

    id: int
    index: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    steps_done: int
    #: Wall clock of its finished steps, plus the running step's time so far.
    seconds: float
    structures: int
    jobs: dict[str, int]  # state -> count
    labels: dict[str, int]  # level -> labels made in this iteration
    test_errors: dict[str, evaluate.TestError]  # head -> evaluate step's errors
    #: A step of it is running (so ``seconds`` is still growing).
    running: bool = False


@dataclass(frozen=True)
class CampaignView:
    header: CampaignHeader
    iterations: list[IterationLine]
    scores: ScoreDistribution
    labels_cumulative: dict[str, list[int]] = field(default_factory=dict)  # level -> per iteration

    @property
    def heads(self) -> list[str]:
        return sorted({head for line in self.iterations for head in line.test_errors})

    @property
    def index_by_id(self) -> dict[int, int]:
        return {line.id: line.index for line in self.iterations}

    @property
    def step_count(self) -> int:
        """Steps in one iteration."""
        return len(STEP_ORDER)


def campaign_header(session: Session, campaign: Campaign) -> CampaignHeader:
    config = campaign.config or {}
    levels = [str(route.get("level")) for route in config.get("routing", []) if route.get("level")]
    return CampaignHeader(
        id=campaign.id,
        name=campaign.name,
        state=campaign.state,
        stop_reason=campaign.stop_reason,
        stop_message=(campaign.stop_detail or {}).get("message"),
        stop_requested=bool(campaign.stop_requested),
        lock_holder=campaign.lock_holder,
        lock_heartbeat_at=campaign.lock_heartbeat_at,
        run_seconds=float(campaign.run_seconds or 0.0),
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        levels=levels,
        thresholds_mev_per_atom=thresholds_mev_per_atom(config, levels),
        current_step=running_steps(session, [campaign.id]).get(campaign.id)
        if campaign.state == "running"
        else None,
    )


def campaign_view(session: Session, campaign_id: int) -> CampaignView | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    header = campaign_header(session, campaign)
    iterations = session.execute(
        select(
            Iteration.id, Iteration.index, Iteration.status, Iteration.started_at,
            Iteration.finished_at,
        )
        .where(Iteration.campaign_id == campaign_id)
        .order_by(Iteration.index)
    ).all()  # fmt: skip
    ids = [row[0] for row in iterations]
    steps = _step_totals(session, campaign_id)
    running = _running_seconds(session, campaign_id)
    errors = _test_errors(session, campaign_id)
    structures = _structures_per_iteration(session, campaign_id)
    jobs = _jobs_per_iteration(session, campaign_id)
    labels = _labels_per_iteration(session, campaign_id)
    lines = [
        IterationLine(
            id=iteration_id,
            index=index,
            status=status,
            started_at=started,
            finished_at=finished,
            steps_done=steps.get(index, (0, 0.0))[0],
            seconds=steps.get(index, (0, 0.0))[1] + running.get(index, 0.0),
            structures=structures.get(iteration_id, 0),
            jobs=jobs.get(iteration_id, {}),
            labels=labels.get(iteration_id, {}),
            test_errors=errors.get(index, {}),
            running=index in running,
        )
        for iteration_id, index, status, started, finished in iterations
    ]
    level_order = header.levels + sorted(
        {lvl for v in labels.values() for lvl in v} - set(header.levels)
    )
    cumulative: dict[str, list[int]] = {}
    for level in level_order:
        total, per = 0, []
        for line in lines:
            total += line.labels.get(level, 0)
            per.append(total)
        cumulative[level] = per
    return CampaignView(header, lines, score_distribution(session, ids), cumulative)


def _step_totals(session: Session, campaign_id: int) -> dict[int, tuple[int, float]]:
    """Per iteration index: steps succeeded and their wall-clock seconds."""
    rows = session.execute(
        select(
            CampaignStep.iteration_index,
            func.count(CampaignStep.id),
            func.coalesce(func.sum(CampaignStep.seconds), 0.0),
        )
        .where(
            CampaignStep.campaign_id == campaign_id,
            CampaignStep.state == StepState.succeeded.value,
        )
        .group_by(CampaignStep.iteration_index)
    )
    return {index: (int(n), float(seconds or 0.0)) for index, n, seconds in rows}


def _running_seconds(session: Session, campaign_id: int) -> dict[int, float]:
    """Per iteration index: seconds since its running step started (none when none runs)."""
    now = datetime.now(UTC)
    found: dict[int, float] = {}
    for index, started in session.execute(
        select(CampaignStep.iteration_index, CampaignStep.started_at).where(
            CampaignStep.campaign_id == campaign_id,
            CampaignStep.state == StepState.running.value,
        )
    ):
        moment = as_utc(started)
        if moment is not None:
            found[index] = found.get(index, 0.0) + max((now - moment).total_seconds(), 0.0)
    return found


def _test_errors(session: Session, campaign_id: int) -> dict[int, dict[str, evaluate.TestError]]:
    """Per iteration index: each head's errors on the test split (the evaluate step's outputs)."""
    rows = session.execute(
        select(CampaignStep.iteration_index, CampaignStep.outputs).where(
            CampaignStep.campaign_id == campaign_id,
            CampaignStep.name == "evaluate",
            CampaignStep.state == StepState.succeeded.value,
        )
    )
    return {
        index: evaluate.Outputs.model_validate(outputs or {}).test_errors for index, outputs in rows
    }


def _structures_per_iteration(session: Session, campaign_id: int) -> dict[int, int]:
    """Structures that joined the campaign in each iteration (by iteration id)."""
    joined = (
        select(
            CampaignStructure.structure_id,
            func.min(CampaignStructure.iteration_index).label("first"),
        )
        .where(CampaignStructure.campaign_id == campaign_id)
        .group_by(CampaignStructure.structure_id)
        .subquery()
    )
    rows = session.execute(
        select(Iteration.id, func.count())
        .select_from(joined)
        .join(
            Iteration, (Iteration.campaign_id == campaign_id) & (Iteration.index == joined.c.first)
        )
        .group_by(Iteration.id)
    )
    return {int(iteration_id): int(n) for iteration_id, n in rows}


def _jobs_per_iteration(session: Session, campaign_id: int) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for iteration_id, state, n in session.execute(
        select(LabelingJob.iteration_id, LabelingJob.state, func.count(LabelingJob.id))
        .where(LabelingJob.campaign_id == campaign_id)
        .group_by(LabelingJob.iteration_id, LabelingJob.state)
    ):
        if iteration_id is not None:
            found[iteration_id][JobState(state).value] = int(n)
    return dict(found)


def _labels_per_iteration(session: Session, campaign_id: int) -> dict[int, dict[str, int]]:
    """Labels made by the campaign's jobs, per iteration and level."""
    names = level_names(session)
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for iteration_id, level_id, n in session.execute(
        select(LabelingJob.iteration_id, Label.level_id, func.count(Label.id))
        .join(Label, Label.job_id == LabelingJob.id)
        .where(LabelingJob.campaign_id == campaign_id)
        .group_by(LabelingJob.iteration_id, Label.level_id)
    ):
        if iteration_id is not None:
            found[iteration_id][names[level_id]] = int(n)
    return dict(found)
