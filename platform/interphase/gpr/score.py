"""Score candidate structures by GP uncertainty and queue the uncertain ones.

A candidate is scored by the newest GP of its subset and level; a candidate
whose subset has no GP counts as maximally uncertain (std = inf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from interphase.db.api import create_jobs
from interphase.db.models import GPRModel, JobReason, LevelOfTheory, Structure
from interphase.db.session import transaction
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.select import select_uncertain


@dataclass
class CandidateScores:
    """Per-candidate predicted energy std per atom (Hartree) and the GP that gave it."""

    structure_ids: np.ndarray
    std_per_atom_hartree: np.ndarray
    gpr_model_ids: list[int | None]


def score_candidates(url: str | None, structure_ids: list[int], level: str) -> CandidateScores:
    """Predicted energy std per atom of each candidate from its subset's newest GP."""
    with transaction(url) as session:
        level_id = session.scalars(
            select(LevelOfTheory.id).where(LevelOfTheory.name == level)
        ).one()
        structures = session.scalars(select(Structure).where(Structure.id.in_(structure_ids))).all()
        by_id = {s.id: s for s in structures}
        newest: dict[str, GPRModel] = {}
        for model in session.scalars(
            select(GPRModel).where(GPRModel.level_id == level_id).order_by(GPRModel.id)
        ):
            newest[model.subset_key] = model
        states = {key: (m.id, m.state) for key, m in newest.items()}
    stds = np.full(len(structure_ids), np.inf)
    model_ids: list[int | None] = [None] * len(structure_ids)
    gps: dict[str, EnergyGradientGP] = {}
    for i, sid in enumerate(structure_ids):
        structure = by_id[sid]
        if structure.subset_key not in states:
            continue
        model_id, state = states[structure.subset_key]
        gp = gps.setdefault(structure.subset_key, EnergyGradientGP.from_bytes(state))
        order = np.argsort(structure.numbers, kind="stable")
        prediction = gp.predict(structure.positions_angstrom[order][None])
        stds[i] = prediction.energy_std_hartree[0] / structure.n_atoms
        model_ids[i] = model_id
    return CandidateScores(np.asarray(structure_ids), stds, model_ids)


def queue_uncertain(
    url: str | None,
    scores: CandidateScores,
    level: str,
    *,
    threshold_per_atom_hartree: float,
    max_count: int,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
) -> list[int]:
    """Create ``uncertainty`` labeling jobs for the selected candidates; returns job ids."""
    picked = select_uncertain(scores.std_per_atom_hartree, threshold_per_atom_hartree, max_count)
    with transaction(url) as session:
        level_row = session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == level)).one()
        job_ids = []
        for i in picked:
            std = float(scores.std_per_atom_hartree[i])
            jobs = create_jobs(
                session,
                [int(scores.structure_ids[i])],
                level_row,
                reason=JobReason.uncertainty,
                reason_detail={
                    "gpr_model_id": scores.gpr_model_ids[i],
                    "predicted_std_per_atom_hartree": std if np.isfinite(std) else None,
                    "threshold_per_atom_hartree": threshold_per_atom_hartree,
                },
                campaign_id=campaign_id,
                iteration_id=iteration_id,
            )
            job_ids += [job.id for job in jobs]
    return job_ids
