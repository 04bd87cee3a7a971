"""What a campaign did, iteration by iteration: rows for `campaign show`, the story, lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.progress import running_step_line
from interphase.campaign.records import find_campaign
from interphase.campaign.steps.evaluate import TestError, Validation
from interphase.campaign.steps.jobs import FailedJob
from interphase.campaign.steps.summary import IterationSummary, LabelSource
from interphase.db import membership
from interphase.db.models import (
    Campaign,
    GPRModel,
    Iteration,
    JobReason,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
    SyntheticLabel,
    TrainingRun,
)
from interphase.db.structures import lineage


@dataclass
class IterationRow:
    """One iteration as `campaign show` prints it."""

    index: int
    status: str
    structures: dict[str, int]
    jobs: dict[str, dict[str, int]]
    labels: dict[str, int]
    gps: int
    picks: dict[str, int]
    synthetic: int
    test_errors: dict[str, TestError]
    select_fraction: dict[str, float | None]
    pool_fraction: float | None
    seconds: float
    failed_jobs: list[FailedJob] = field(default_factory=list)
    unphysical: int = 0
    explored: int = 0
    #: Per level: labels computed by this iteration's jobs and existing labels reused.
    sources: dict[str, LabelSource] = field(default_factory=dict)
    #: The validation suites' runs, when the iteration ran them (see campaign/validation.py).
    validation: Validation | None = None


def campaign_rows(session: Session, campaign: Campaign) -> list[IterationRow]:
    rows = []
    for iteration in session.scalars(
        select(Iteration).where(Iteration.campaign_id == campaign.id).order_by(Iteration.index)
    ):
        s = IterationSummary.model_validate(iteration.summary or {})
        rows.append(
            IterationRow(
                index=iteration.index,
                status=iteration.status,
                structures=s.structures_by_generator,
                jobs=s.jobs,
                labels=s.labels_total,
                gps=s.gps,
                picks={k: v.n_picked for k, v in s.selection.items()},
                synthetic=s.synthetic_labels,
                test_errors=s.test_errors,
                select_fraction={k: v.uncertain_fraction for k, v in s.selection.items()},
                pool_fraction=s.pool_uncertain_fraction,
                seconds=s.seconds,
                failed_jobs=s.failed_jobs,
                unphysical=s.exploration.unphysical,
                explored=s.exploration.candidates,
                sources=s.label_sources,
                validation=s.validation,
            )
        )
    return rows


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


#: The test errors of a head that the story reports: summary key, name, unit.
TEST_ERRORS: tuple[tuple[str, str, str], ...] = (
    ("energy_mae_mev_per_atom", "energy", "meV/atom"),
    ("force_mae_mev_per_angstrom", "forces", "meV/Å"),
)


def error_trend(before: float | None, now: float | None) -> str:
    """How an error moved since the previous iteration, judged on the printed (0.1) values.

    Returns ``" (falling)"``, ``" (rising)"`` or ``" (unchanged)"``, and ``""`` when
    either value is missing.
    """
    if before is None or now is None:
        return ""
    before_shown, now_shown = float(_fmt(before)), float(_fmt(now))
    if now_shown < before_shown:
        return " (falling)"
    if now_shown > before_shown:
        return " (rising)"
    return " (unchanged)"


def head_error_line(
    head: str, errors: dict[str, Any], previous: dict[str, Any] | None = None
) -> str:
    """One head's test errors, each with its own trend against ``previous`` (same keys).

    For example ``test error HF: energy 126.6 meV/atom (rising), forces 150.2 meV/Å
    (falling)``.
    """
    parts = []
    for key, name, unit in TEST_ERRORS:
        now = errors.get(key)
        trend = error_trend(previous.get(key), now) if previous is not None else ""
        parts.append(f"{name} {_fmt(now)} {unit}{trend}")
    return f"test error {head}: {', '.join(parts)}"


def campaign_story(session: Session, name: str) -> list[str]:
    """Plain-language lines: what each iteration did and why the campaign stopped."""
    campaign = find_campaign(session, name)
    lines = [f"campaign {campaign.name!r}: {campaign.state}"]
    if campaign.state == "running":
        now = running_step_line(session, campaign.id)
        if now is not None:
            lines.append(now)
    previous: IterationRow | None = None
    for row in campaign_rows(session, campaign):
        made = ", ".join(f"{n} {g}" for g, n in row.structures.items())
        labels = ", ".join(f"{n} {lvl}" for lvl, n in row.labels.items())
        source = f"made {made}" if made else "candidates from the previous exploration"
        lines.append(f"iteration {row.index} ({row.seconds:.0f} s): {source}")
        if row.explored or row.unphysical:
            lines.append(
                f"  explored with the trained model: {row.explored} new candidates, "
                f"{row.unphysical} run(s) stopped at unphysical geometry"
            )
        for level, fraction in row.select_fraction.items():
            lines.append(
                f"  {level}: {_fmt(None if fraction is None else 100 * fraction, '.0f')}% of the "
                f"candidates uncertain, {row.picks.get(level, 0)} picked for labeling"
            )
        reused = {level: n for level, n in row.sources.items() if n.reused}
        if reused:
            lines.append(
                "  labels reused, not recomputed: "
                + ", ".join(
                    f"{n.reused} {level} ({n.computed} computed)" for level, n in reused.items()
                )
            )
        lines.append(f"  labels so far: {labels}; {row.gps} GPs; {row.synthetic} synthetic labels")
        for head, errors in row.test_errors.items():
            before = previous.test_errors.get(head) if previous is not None else None
            shown = None if before is None else before.model_dump()
            lines.append(f"  {head_error_line(head, errors.model_dump(), shown)}")
        lines += validation_lines(row.validation)
        if row.pool_fraction is not None:
            lines.append(
                f"  next candidate pool: {100 * row.pool_fraction:.0f}% uncertain under the new GPs"
            )
        if row.failed_jobs:
            ids = ", ".join(str(f.job_id) for f in row.failed_jobs[:10])
            lines.append(f"  failed jobs (ready for `interphase jobs resubmit`): {ids}")
        previous = row
    if campaign.stop_reason:
        lines.append(f"stopped: {campaign.stop_reason} — {campaign.stop_detail.get('message', '')}")
    return lines


def validation_lines(validation: Validation | None) -> list[str]:
    """Per suite run: passed or which checks failed, with head and reference values."""
    lines = []
    for run in [] if validation is None else validation.runs:
        failed = [c for c in run.checks if not c.passed]
        where = f"  validation {run.suite} of head {run.head}"
        if not failed:
            lines.append(f"{where}: all {len(run.checks)} checks passed")
            continue
        shown = "; ".join(
            f"{c.name} {_fmt(c.model, '.4g')} vs {_fmt(c.reference, '.4g')}" for c in failed[:4]
        )
        more = f" and {len(failed) - 4} more" if len(failed) > 4 else ""
        lines.append(f"{where}: {len(failed)} of {len(run.checks)} failed ({shown}{more})")
    return lines


def label_lineage(session: Session, campaign_id: int) -> list[str]:
    """The lineage of one uncertainty-selected label: why it was computed, from what."""
    row = session.execute(
        select(LabelingJob, Label)
        .join(
            Label,
            (Label.structure_id == LabelingJob.structure_id)
            & (Label.level_id == LabelingJob.level_id),
        )
        .where(LabelingJob.campaign_id == campaign_id, LabelingJob.reason == JobReason.uncertainty)
        .order_by(LabelingJob.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return []
    job, label = row
    level = session.get_one(LevelOfTheory, label.level_id)
    detail = job.reason_detail or {}
    lines = [
        f"label {label.id}: {level.name} energy {label.total_energy_hartree:.6f} Ha of structure "
        f"{job.structure_id} (job {job.id}, {len(job.attempts)} attempt(s))",
        f"  picked because GP {detail.get('gpr_model_id')} predicted a std of "
        f"{_fmt(detail.get('predicted_std_per_atom_mev'), '.2f')} meV/atom > "
        f"{_fmt(detail.get('threshold_per_atom_mev'), '.2f')}",
    ]
    for structure in lineage(session, job.structure_id):
        lines.append(
            f"  ← structure {structure.id}: {structure.generator} "
            f"(seed {structure.seed}, {structure.n_atoms} atoms)"
        )
    used = session.scalars(
        select(TrainingRun.id)
        .where(TrainingRun.campaign_id == campaign_id)
        .order_by(TrainingRun.id)
    ).all()
    trained_on = [
        rid for rid in used if label.id in set(session.get_one(TrainingRun, rid).label_ids.tolist())
    ]
    if trained_on:
        lines.append(f"  → trained on by training run(s) {', '.join(map(str, trained_on))}")
    return lines


def campaign_list(session: Session) -> list[dict[str, Any]]:
    out = []
    for campaign in session.scalars(select(Campaign).order_by(Campaign.id)):
        n_iterations = session.scalar(
            select(func.count())
            .select_from(Iteration)
            .where(Iteration.campaign_id == campaign.id, Iteration.status == "succeeded")
        )
        out.append(
            {
                "name": campaign.name,
                "state": campaign.state,
                "iterations": int(n_iterations or 0),
                "stop_reason": campaign.stop_reason,
                "updated_at": campaign.updated_at,
                "holder": campaign.lock_holder,
            }
        )
    return out


def counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Totals for tests and the export: structures, labels, jobs, GPs, synthetic labels."""

    def n(query: Any) -> int:
        return int(session.scalar(query) or 0)

    return {
        "structures": n(
            select(func.count()).select_from(Structure).where(membership.holds(campaign_id))
        ),
        "labels": n(
            select(func.count()).select_from(Label).where(membership.training_label(campaign_id))
        ),
        "jobs": n(
            select(func.count())
            .select_from(LabelingJob)
            .where(LabelingJob.campaign_id == campaign_id)
        ),
        "gps": n(
            select(func.count()).select_from(GPRModel).where(GPRModel.campaign_id == campaign_id)
        ),
        "synthetic": n(
            select(func.count())
            .select_from(SyntheticLabel)
            .join(GPRModel, SyntheticLabel.gpr_model_id == GPRModel.id)
            .where(GPRModel.campaign_id == campaign_id)
        ),
    }


def iteration_table(name: str, rows: list[IterationRow]) -> Any:
    """The `campaign show` table."""
    from rich.table import Table

    table = Table(title=f"campaign {name}", show_lines=True)
    for header in (
        "it",
        "structures",
        "jobs",
        "labels",
        "GPs",
        "picks",
        "synthetic",
        "test MAE meV/atom",
        "uncertain",
        "time",
    ):
        table.add_column(header, overflow="fold")
    for row in rows:
        jobs = "\n".join(
            f"{level}: " + " ".join(f"{n} {s}" for s, n in states.items())
            for level, states in row.jobs.items()
        )
        table.add_row(
            str(row.index),
            "\n".join(f"{n} {g}" for g, n in row.structures.items()) or "–",
            jobs or "–",
            "\n".join(f"{n} {lvl}" for lvl, n in row.labels.items()) or "–",
            str(row.gps),
            "\n".join(f"{n} {lvl}" for lvl, n in row.picks.items()) or "–",
            str(row.synthetic),
            "\n".join(
                f"{head}: {_fmt(v.energy_mae_mev_per_atom)}" for head, v in row.test_errors.items()
            )
            or "–",
            "\n".join(
                f"{lvl}: {_fmt(None if f is None else 100 * f, '.0f')}%"
                for lvl, f in row.select_fraction.items()
            )
            + (f"\npool: {100 * row.pool_fraction:.0f}%" if row.pool_fraction is not None else ""),
            f"{row.seconds:.0f} s",
        )  # fmt: skip
    return table


def describe_config(config: Any) -> list[str]:
    """What a campaign file would do (`campaign validate`).

    A level whose engine is not installed here says what could not be checked.
    """
    from interphase.campaign.engine_check import check_level

    lines = [f"campaign {config.name!r} (seed {config.seed}): valid"]
    for route in config.routing:
        spec = config.level_spec(route.level)
        unchecked = check_level(spec).unchecked
        where = f"{route.structures} structures" + (
            f" up to {route.max_atoms} atoms" if route.max_atoms else ""
        )
        how = (
            "every one"
            if route.mode == "all"
            else (
                f"{route.initial_per_iteration} at random, then GP-uncertain above "
                f"{config.selection.threshold(route.level):g} meV/atom"
            )
        )
        lines.append(
            f"  {route.level}: {spec.engine} {spec.method}"
            + (f"/{spec.basis}" if spec.basis else "")
            + f" labels {where}: {how}"
            + (f" ({unchecked})" if unchecked else "")
        )
    g = config.generators
    made = [
        f"{len(g.lattice)} lattice", f"{len(g.molecules)} molecules", f"{len(g.afir)} AFIR",
        f"{len(g.md)} MD",
    ]  # fmt: skip
    lines.append(f"  generators ({g.iterations} iteration(s)): {', '.join(made)}")
    a, t, e, s = config.augmentation, config.training, config.exploration, config.stopping
    lines.append(
        "  augmentation: "
        + (f"{a.copies} copies, δ = {a.delta_angstrom} Å" if a.enabled else "off")
    )
    lines.append(
        f"  training: {t.mode}, {t.epochs} epochs, warm start {'on' if t.warm_start else 'off'}"
    )
    lines.append(
        "  exploration: "
        + (
            f"{e.starts} MD runs × {e.steps} steps at {e.temperatures_k} K with head "
            f"{config.exploration_head}"
            if e.enabled
            else "off"
        )
    )
    rules = [f"{s.max_iterations} iterations"]
    if s.uncertain_fraction_below:
        rules.append(f"uncertain fraction < {s.uncertain_fraction_below}")
    rules += [f"{n} labels at {lvl}" for lvl, n in s.label_budget.items()]
    rules += [f"{h} CPU h at {lvl}" for lvl, h in s.cpu_hours_budget.items()]
    if s.wall_clock_hours:
        rules.append(f"{s.wall_clock_hours} h wall clock")
    lines.append(f"  stops at: {', '.join(rules)}")
    lines.append(
        f"  labeling: {config.executor.workers} worker(s); executor {config.executor.kind}"
    )
    return lines
