"""Structures for the dashboard: a filtered list, and one structure's lineage up and down.

Up: generator, parameters, seed and the chain of parents. Down: its labeling
jobs, labels per level, synthetic labels, the GPs that trained on its labels
(``gpr_model.training_label_ids``), the training runs that used its labels or
synthetic labels, and its children.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from interphase.dashboard.elements import LegendEntry, element_legend
from interphase.dashboard.params import optional_whole_number, text_value
from interphase.dashboard.queries.distinct import distinct_values
from interphase.db import membership
from interphase.db.models import (
    Campaign,
    GPRModel,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    Structure,
    SyntheticLabel,
    TrainingRun,
)
from interphase.db.structures import lineage, record_from_row
from interphase.records import StructureRecord

PAGE_SIZE = 50
#: Children listed on a structure's page (the rest are counted).
CHILDREN_SHOWN = 50


@dataclass(frozen=True)
class StructuresQuery:
    """The structures filter: generator, campaign, formula (all exact)."""

    generator: str | None = None
    campaign: int | None = None
    formula: str | None = None

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> StructuresQuery:
        return cls(
            text_value(values.get("generator"), "generator"),
            optional_whole_number(values.get("campaign"), "campaign"),
            text_value(values.get("formula"), "formula"),
        )

    def params(self, **overrides: Any) -> dict[str, str]:
        values: dict[str, Any] = {
            "generator": self.generator,
            "campaign": self.campaign,
            "formula": self.formula,
            **overrides,
        }
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.generator is not None:
            where.append(Structure.generator == self.generator)
        if self.campaign is not None:
            where.append(membership.holds(self.campaign))
        if self.formula is not None:
            where.append(Structure.formula == self.formula)
        return where


@dataclass(frozen=True)
class StructureRow:
    id: int
    formula: str
    n_atoms: int
    pbc: str
    generator: str
    campaign: str | None
    parent_id: int | None
    created_at: datetime
    levels: tuple[str, ...]  # levels it has a label at


@dataclass(frozen=True)
class StructurePage:
    rows: list[StructureRow]
    total: int
    newer_cursor: int | None
    older_cursor: int | None


def structure_page(
    session: Session, query: StructuresQuery, *, before: int | None = None, after: int | None = None
) -> StructurePage:
    """Structures matching ``query``, newest first (keyset on the id)."""
    base = (
        select(
            Structure.id,
            Structure.formula,
            Structure.n_atoms,
            Structure.pbc,
            Structure.generator,
            Campaign.name,
            Structure.parent_id,
            Structure.created_at,
        )
        .outerjoin(Campaign, Structure.campaign_id == Campaign.id)
        .where(*query.conditions())
    )
    if after is not None:
        found = session.execute(
            base.where(Structure.id > after).order_by(Structure.id).limit(PAGE_SIZE)
        ).all()[::-1]
    else:
        if before is not None:
            base = base.where(Structure.id < before)
        found = session.execute(base.order_by(Structure.id.desc()).limit(PAGE_SIZE)).all()
    levels = _labeled_levels(session, [row[0] for row in found])
    rows = [StructureRow(*row, levels=tuple(levels.get(row[0], ()))) for row in found]

    def exists(condition: ColumnElement[bool]) -> bool:
        one = select(Structure.id).where(*query.conditions(), condition).limit(1)
        return session.scalar(one) is not None

    newer = rows[0].id if rows and exists(Structure.id > rows[0].id) else None
    older = rows[-1].id if rows and exists(Structure.id < rows[-1].id) else None
    total = session.scalar(select(func.count(Structure.id)).where(*query.conditions())) or 0
    return StructurePage(rows, int(total), newer, older)


def _labeled_levels(session: Session, ids: list[int]) -> dict[int, list[str]]:
    levels: dict[int, list[str]] = {}
    if not ids:
        return levels
    for structure_id, name in session.execute(
        select(Label.structure_id, LevelOfTheory.name)
        .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
        .where(Label.structure_id.in_(ids))
        .order_by(LevelOfTheory.name)
    ):
        levels.setdefault(structure_id, []).append(name)
    return levels


def generators(session: Session) -> list[str]:
    return [str(name) for name in distinct_values(session, Structure.generator)]


@dataclass(frozen=True)
class JobSummary:
    id: int
    level: str
    state: JobState
    attempts: int
    error_class: str | None
    updated_at: datetime


@dataclass(frozen=True)
class LabelSummary:
    id: int
    level: str
    total_energy_hartree: float | None
    atomization_energy_hartree: float | None
    has_gradient: bool
    has_charges: bool
    job_id: int | None
    engine: str | None
    created_at: datetime


@dataclass(frozen=True)
class SyntheticSummary:
    id: int
    level: str
    gpr_model_id: int
    energy_hartree: float
    energy_std_hartree: float


@dataclass(frozen=True)
class ModelUse:
    """A GP or training run that used this structure's labels."""

    id: int
    what: str  # subset key (GP) or heads (training run)
    status: str
    created_at: datetime
    via: str  # "label", "synthetic label"


@dataclass(frozen=True)
class StructureDetail:
    structure: Structure
    record: StructureRecord
    campaign: str | None
    ancestors: list[Structure]  # parent first, up to the root
    jobs: list[JobSummary]
    labels: list[LabelSummary]
    synthetic: list[SyntheticSummary]
    gps: list[ModelUse]
    training_runs: list[ModelUse]
    children: list[tuple[int, str, str]]  # (id, formula, generator)
    n_children: int

    def viewer_data(self) -> dict[str, Any]:
        """Symbols, positions (Å), cell (Å) and element colours for the 3D view."""
        record = self.record
        return {
            "symbols": record.symbols,
            "colors": {entry.symbol: entry.color for entry in self.legend()},
            "positions": np.asarray(record.positions_angstrom, dtype=float).round(6).tolist(),
            "cell": None
            if record.cell_angstrom is None or not record.is_periodic
            else np.asarray(record.cell_angstrom, dtype=float).round(6).tolist(),
        }

    def legend(self) -> list[LegendEntry]:
        """The elements of the 3D view with their colours."""
        return element_legend(list(self.record.symbols))


def structure_detail(session: Session, structure_id: int) -> StructureDetail | None:
    chain = lineage(session, structure_id)
    if not chain:
        return None
    structure = chain[0]
    labels = list(session.scalars(select(Label).where(Label.structure_id == structure_id)))
    campaign = session.get(Campaign, structure.campaign_id) if structure.campaign_id else None
    synthetic = _synthetic(session, structure_id)
    children = session.execute(
        select(Structure.id, Structure.formula, Structure.generator)
        .where(Structure.parent_id == structure_id)
        .order_by(Structure.id)
        .limit(CHILDREN_SHOWN)
    ).all()
    n_children = session.scalar(
        select(func.count(Structure.id)).where(Structure.parent_id == structure_id)
    )
    return StructureDetail(
        structure=structure,
        record=record_from_row(structure, labels),
        campaign=campaign.name if campaign else None,
        ancestors=chain[1:],
        jobs=_jobs(session, structure_id),
        labels=[_label_summary(label) for label in labels],
        synthetic=synthetic,
        gps=_gps_using(session, structure, [label.id for label in labels]),
        training_runs=_runs_using(
            session, structure, [label.id for label in labels], [s.id for s in synthetic]
        ),
        children=[(int(i), f, g) for i, f, g in children],
        n_children=int(n_children or 0),
    )


def _jobs(session: Session, structure_id: int) -> list[JobSummary]:
    rows = session.execute(
        select(
            LabelingJob.id,
            LevelOfTheory.name,
            LabelingJob.state,
            LabelingJob.attempt,
            LabelingJob.error_class,
            LabelingJob.updated_at,
        )
        .join(LevelOfTheory, LabelingJob.level_id == LevelOfTheory.id)
        .where(LabelingJob.structure_id == structure_id)
        .order_by(LabelingJob.id)
    ).all()
    return [JobSummary(*row) for row in rows]


def _label_summary(label: Label) -> LabelSummary:
    return LabelSummary(
        id=label.id,
        level=label.level.name,
        total_energy_hartree=label.total_energy_hartree,
        atomization_energy_hartree=label.atomization_energy_hartree,
        has_gradient=label.gradient_hartree_per_angstrom is not None,
        has_charges=label.charges_e is not None,
        job_id=label.job_id,
        engine=(label.provenance or {}).get("engine"),
        created_at=label.created_at,
    )


def _synthetic(session: Session, structure_id: int) -> list[SyntheticSummary]:
    rows = session.execute(
        select(
            SyntheticLabel.id,
            LevelOfTheory.name,
            SyntheticLabel.gpr_model_id,
            SyntheticLabel.energy_hartree,
            SyntheticLabel.energy_std_hartree,
        )
        .join(LevelOfTheory, SyntheticLabel.level_id == LevelOfTheory.id)
        .where(SyntheticLabel.structure_id == structure_id)
        .order_by(SyntheticLabel.id)
    ).all()
    return [SyntheticSummary(*row) for row in rows]


def _gps_using(session: Session, structure: Structure, label_ids: list[int]) -> list[ModelUse]:
    """GPs of the structure's subset whose training labels include one of its labels."""
    if not label_ids:
        return []
    rows = session.execute(
        select(GPRModel.id, GPRModel.subset_key, GPRModel.created_at, GPRModel.training_label_ids)
        .where(
            GPRModel.subset_key == structure.subset_key,
            GPRModel.created_at >= structure.created_at,
        )
        .order_by(GPRModel.id)
    ).all()
    return [
        ModelUse(int(gp_id), subset, "fitted", created, "label")
        for gp_id, subset, created, used in rows
        if np.isin(label_ids, used).any()
    ]


def _runs_using(
    session: Session, structure: Structure, label_ids: list[int], synthetic_ids: list[int]
) -> list[ModelUse]:
    """Training runs whose snapshot holds one of the labels or synthetic labels.

    Only runs started after the structure was stored can hold its labels.
    """
    if not label_ids and not synthetic_ids:
        return []
    rows = session.execute(
        select(
            TrainingRun.id,
            TrainingRun.heads,
            TrainingRun.status,
            TrainingRun.started_at,
            TrainingRun.label_ids,
            TrainingRun.synthetic_label_ids,
        )
        .where(TrainingRun.started_at >= structure.created_at)
        .order_by(TrainingRun.id)
    ).all()
    uses = []
    for run_id, heads, status, started, used_labels, used_synthetic in rows:
        via = []
        if label_ids and np.isin(label_ids, used_labels).any():
            via.append("label")
        if synthetic_ids and np.isin(synthetic_ids, used_synthetic).any():
            via.append("synthetic label")
        if via:
            uses.append(ModelUse(int(run_id), ", ".join(heads), status, started, " + ".join(via)))
    return uses
