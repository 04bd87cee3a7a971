"""The cost of reference labels: the paper's estimate for hybrid DFT, measured time otherwise.

A density-fitted hybrid calculation costs about ``7e-7 · n_basis² · n_aux + 1``
CPU-seconds (the papers' fit for ωB97X-D3BJ/def2-TZVPD), with ``n_basis`` the
orbital and ``n_aux`` the auxiliary basis functions. Both are sums over atoms,
so they are counted once per element with PySCF's basis tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.db.models import JobAttempt, JobState, Label, LabelingJob, LevelOfTheory, Structure

COEFFICIENT_CPU_S = 7e-7
OFFSET_CPU_S = 1.0


@lru_cache(maxsize=256)
def basis_counts(atomic_number: int, basis: str, aux_basis: str | None) -> tuple[int, int]:
    """(orbital, auxiliary) basis functions of one atom of element ``atomic_number``."""
    from pyscf import df, gto

    spin = atomic_number % 2
    mol = gto.M(atom=[(atomic_number, (0.0, 0.0, 0.0))], basis=basis, spin=spin, verbose=0)
    auxmol = df.make_auxmol(mol, aux_basis or df.make_auxbasis(mol))
    return int(mol.nao_nr()), int(auxmol.nao_nr())


def hybrid_cost_cpu_seconds(
    numbers: Iterable[int], basis: str, aux_basis: str | None = None
) -> float:
    """The paper's CPU-second estimate for one density-fitted hybrid calculation."""
    n_basis = n_aux = 0
    for z, count in Counter(int(z) for z in numbers).items():
        orbital, auxiliary = basis_counts(z, basis, aux_basis)
        n_basis += count * orbital
        n_aux += count * auxiliary
    return COEFFICIENT_CPU_S * n_basis**2 * n_aux + OFFSET_CPU_S


def level_cpu_hours(session: Session, campaign_id: int, level: LevelOfTheory) -> float:
    """Estimated CPU hours of the labels the campaign computed at ``level`` (reused ones are free).

    PySCF levels with a basis use the paper's formula per labeled structure;
    other engines sum the measured wall time of their successful attempts.
    """
    if level.engine == "pyscf" and level.basis:
        rows = session.scalars(
            select(Structure.numbers)
            .join(Label, Label.structure_id == Structure.id)
            .join(LabelingJob, Label.job_id == LabelingJob.id)
            .where(Label.level_id == level.id, LabelingJob.campaign_id == campaign_id)
        ).all()
        aux = (level.settings or {}).get("auxbasis")
        try:
            return (
                sum(hybrid_cost_cpu_seconds(numbers, level.basis, aux) for numbers in rows) / 3600
            )
        except ImportError:
            pass  # PySCF missing: fall back to the measured time
    seconds = session.scalar(
        select(func.coalesce(func.sum(JobAttempt.wall_time_s), 0.0))
        .join(LabelingJob, JobAttempt.job_id == LabelingJob.id)
        .where(
            LabelingJob.level_id == level.id,
            LabelingJob.campaign_id == campaign_id,
            JobAttempt.state == JobState.succeeded,
        )
    )
    return float(seconds or 0.0) / 3600
