"""Candidate scores of an iteration, shared by ``select`` and ``evaluate``.

Every candidate a GP scored is a ``candidate_score`` row of one stage
(``select``: the candidates of this iteration; ``pool``: what exploration
produced, scored by the GPs the iteration ended with).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.steps.contract import StoredModel
from interphase.db.models import CandidateScore, GPRModel
from interphase.gpr.score import CandidateScores
from interphase.units import HARTREE_TO_MEV


class ScoreCounts(StoredModel):
    """Counts and the std distribution (meV/atom) of one stage's scores at one level."""

    n_scored: int = 0
    n_uncertain: int = 0
    uncertain_fraction: float | None = None
    n_without_gp: int = 0
    n_picked: int = 0
    median_std_mev_per_atom: float | None = None
    threshold_mev_per_atom: float | None = None


def models_by_subset(session: Session, model_ids: list[int]) -> dict[str, GPRModel]:
    rows = session.scalars(select(GPRModel).where(GPRModel.id.in_(model_ids))).all()
    return {row.subset_key: row for row in rows}


def store_scores(
    session: Session,
    ctx: StepContext,
    level_id: int,
    scores: CandidateScores,
    threshold_hartree: float,
    picked: set[int],
    stage: str,
) -> None:
    """Record every candidate's score, whether it is uncertain and whether it was picked."""
    std = scores.std_per_atom_hartree
    for i, structure_id in enumerate(scores.structure_ids):
        value = float(std[i])
        session.add(
            CandidateScore(
                campaign_id=ctx.campaign_id,
                iteration_id=ctx.iteration_id,
                structure_id=int(structure_id),
                level_id=level_id,
                gpr_model_id=scores.gpr_model_ids[i],
                std_per_atom_hartree=value if np.isfinite(value) else None,
                stage=stage,
                uncertain=bool(not np.isfinite(value) or value > threshold_hartree),
                picked=i in picked,
            )
        )


def score_counts(
    session: Session, ctx: StepContext, level_id: int, stage: str, threshold_mev: float
) -> ScoreCounts:
    """Counts and the std distribution (meV/atom) of the stored scores of one stage."""
    rows = session.execute(
        select(
            CandidateScore.std_per_atom_hartree, CandidateScore.uncertain, CandidateScore.picked
        ).where(
            CandidateScore.iteration_id == ctx.iteration_id,
            CandidateScore.level_id == level_id,
            CandidateScore.stage == stage,
        )
    ).all()
    finite = np.array([r[0] for r in rows if r[0] is not None]) * HARTREE_TO_MEV
    uncertain = sum(bool(r[1]) for r in rows)
    return ScoreCounts(
        n_scored=len(rows),
        n_uncertain=uncertain,
        uncertain_fraction=uncertain / len(rows) if rows else None,
        n_without_gp=sum(r[0] is None for r in rows),
        n_picked=sum(bool(r[2]) for r in rows),
        median_std_mev_per_atom=float(np.median(finite)) if finite.size else None,
        threshold_mev_per_atom=threshold_mev,
    )


def picked_ids(session: Session, ctx: StepContext, level_id: int) -> list[int]:
    """The structures this iteration's selection picked at the level."""
    return [
        int(i)
        for i in session.scalars(
            select(CandidateScore.structure_id).where(
                CandidateScore.iteration_id == ctx.iteration_id,
                CandidateScore.level_id == level_id,
                CandidateScore.stage == "select",
                CandidateScore.picked.is_(True),
            )
        )
    ]


def scored_already(session: Session, ctx: StepContext, stage: str) -> bool:
    """Whether this iteration's scores of ``stage`` are stored (a resumed step)."""
    return (
        session.scalar(
            select(CandidateScore.id)
            .where(CandidateScore.iteration_id == ctx.iteration_id, CandidateScore.stage == stage)
            .limit(1)
        )
        is not None
    )
