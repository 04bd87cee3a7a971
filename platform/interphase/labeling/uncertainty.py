"""Labeling jobs for the candidates a GP is most uncertain about."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from interphase.db.levels import get_or_create_level
from interphase.db.models import JobReason
from interphase.gpr.score import CandidateScores
from interphase.gpr.select import pick_uncertain
from interphase.labeling.queue.enqueue import create_jobs
from interphase.units import HARTREE_TO_MEV

#: Default minimum RMSD (Å) between two picks of the same subset in one iteration.
DEFAULT_MIN_RMSD_ANGSTROM = 0.01


def queue_uncertainty_jobs(
    session: Session,
    scores: CandidateScores,
    level: str,
    *,
    threshold_per_atom_hartree: float,
    max_count: int,
    min_rmsd_angstrom: float = DEFAULT_MIN_RMSD_ANGSTROM,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
) -> list[int]:
    """Create ``uncertainty`` labeling jobs for the picked candidates; returns job ids.

    The jobs are added to the caller's transaction.

    The picks are :func:`interphase.gpr.select.pick_uncertain`'s: above the
    threshold, most uncertain first, capped at ``max_count``, skipping any
    within ``min_rmsd_angstrom`` of an earlier pick of the same subset.
    """
    picked = pick_uncertain(
        scores,
        threshold_per_atom_hartree=threshold_per_atom_hartree,
        max_count=max_count,
        min_rmsd_angstrom=min_rmsd_angstrom,
    )
    level_row = get_or_create_level(session, level)
    job_ids = []
    for i in picked:
        jobs = create_jobs(
            session,
            [int(scores.structure_ids[i])],
            level_row,
            reason=JobReason.uncertainty,
            reason_detail=uncertainty_detail(
                scores, int(i), threshold_per_atom_hartree, min_rmsd_angstrom
            ),
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        job_ids += [job.id for job in jobs]
    return job_ids


def uncertainty_detail(
    scores: CandidateScores, row: int, threshold_per_atom_hartree: float, min_rmsd_angstrom: float
) -> dict[str, Any]:
    """Why candidate ``row`` of ``scores`` was picked: its GP, predicted std and the threshold."""
    std = float(scores.std_per_atom_hartree[row])
    return {
        "gpr_model_id": scores.gpr_model_ids[row],
        "predicted_std_per_atom_hartree": std if np.isfinite(std) else None,
        "predicted_std_per_atom_mev": std * HARTREE_TO_MEV if np.isfinite(std) else None,
        "threshold_per_atom_hartree": threshold_per_atom_hartree,
        "threshold_per_atom_mev": threshold_per_atom_hartree * HARTREE_TO_MEV,
        "min_rmsd_angstrom": min_rmsd_angstrom,
    }
