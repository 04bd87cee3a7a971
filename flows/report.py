"""The printed report of a campaign iteration."""

from __future__ import annotations

from typing import Any

from ase.units import Hartree
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from interphase.db.api import lineage
from interphase.db.models import (
    GPRModel,
    JobAttempt,
    Label,
    LabelingJob,
    ModelArtifact,
    Structure,
    TrainingRun,
)
from interphase.db.session import transaction
from interphase.gpr.fit import SubsetFit

HARTREE_TO_MEV = 1000 * Hartree  # ase.units.Hartree is eV per Hartree


def _mev(value: float | None) -> str:
    return "—" if value is None else f"{value * HARTREE_TO_MEV:.2f}"


def _gp_table(title: str, fits: list[SubsetFit]) -> Table:
    table = Table(
        "subset",
        "structures",
        "lengthscale (Å)",
        "energy MAE (meV/atom)",
        "force MAE (meV/Å)",
        title=title,
    )
    for fit in fits:
        table.add_row(
            fit.subset_key,
            str(fit.n_structures),
            f"{fit.hyperparameters['lengthscale_angstrom']:.2f}",
            _mev(fit.energy_mae_per_atom_hartree),
            _mev(fit.force_mae_hartree_per_angstrom),
        )
    return table


def _model_table(metrics: dict[str, Any]) -> Table:
    table = Table(
        "head", "split", "energy MAE (meV/atom)", "force MAE (meV/Å)", title="multi-head network"
    )
    for head, splits in metrics.get("heads", {}).items():
        for split, values in splits.items():
            table.add_row(
                head,
                split,
                _mev(values.get("energy_mae_per_atom_hartree")),
                _mev(values.get("force_mae_hartree_per_angstrom")),
            )
    return table


def print_report(report: dict[str, Any], console: Console) -> None:
    """Counts, GP errors, model errors and one lineage chain, from the database."""
    campaign_id = report["campaign_id"]
    with transaction() as session:
        n_structures = session.scalar(
            select(func.count()).select_from(Structure).where(Structure.campaign_id == campaign_id)
        )
        jobs = session.execute(
            select(LabelingJob.reason, LabelingJob.state, LabelingJob.error_class, func.count())
            .where(LabelingJob.campaign_id == campaign_id)
            .group_by(LabelingJob.reason, LabelingJob.state, LabelingJob.error_class)
            .order_by(LabelingJob.reason, LabelingJob.state, LabelingJob.error_class)
        ).all()
        n_gps = session.scalar(
            select(func.count()).select_from(GPRModel).where(GPRModel.campaign_id == campaign_id)
        )
        run = session.get_one(TrainingRun, report["training"]["training_run_id"])
        artifact = session.scalars(
            select(ModelArtifact).where(ModelArtifact.training_run_id == run.id)
        ).one()
        example = session.scalars(
            select(LabelingJob)
            .where(LabelingJob.campaign_id == campaign_id, LabelingJob.reason == "uncertainty")
            .order_by(LabelingJob.id)
            .limit(1)
        ).first()
        chain = _lineage_lines(session, example) if example is not None else []
        n_run_labels = len(run.label_ids)

    counts = Table("what", "count", title="campaign contents")
    counts.add_row("structures", str(n_structures))
    for reason, state, error_class, n in jobs:
        why = f": {error_class}" if error_class else ""
        counts.add_row(f"labeling jobs ({reason}, {state}{why})", str(n))
    counts.add_row("GP models", str(n_gps))
    counts.add_row("labels in the training snapshot", str(n_run_labels))
    console.print(counts)
    console.print(_gp_table("GPs before selection (held-out errors)", report["gp_first"]))
    console.print(_gp_table("GPs after selection (held-out errors)", report["gp_second"]))
    std = report["candidate_std"]
    console.print(
        f"mean GP energy std of candidates: {_mev(std['before'])} → {_mev(std['after'])} meV/atom"
    )
    console.print(_model_table(report["training"]["metrics"]))
    console.print(f"model artifact: {artifact.path} (sha256 {artifact.sha256[:12]}…)")
    if chain:
        console.print("lineage of one uncertainty-selected label:")
        for line in chain:
            console.print(f"  {line}")


def _lineage_lines(session: Any, job: LabelingJob) -> list[str]:
    attempt = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job.id)).first()
    label = session.scalars(select(Label).where(Label.job_id == job.id)).first()
    lines = []
    if label is not None:
        lines.append(f"label {label.id}: E = {label.total_energy_hartree:.6f} Ha")
    if attempt is not None:
        lines.append(
            f"job {job.id} ({job.reason}): {attempt.engine} {attempt.engine_version} on "
            f"{attempt.host}, {attempt.wall_time_s or 0:.3f} s, GP model "
            f"{job.reason_detail.get('gpr_model_id')}, std "
            f"{_mev(job.reason_detail.get('predicted_std_per_atom_hartree'))} meV/atom"
        )
    for structure in lineage(session, job.structure_id):
        lines.append(
            f"structure {structure.id} {structure.formula}: generator {structure.generator}, "
            f"seed {structure.seed}, packing set {structure.generator_params.get('packings')}"
        )
    return lines
