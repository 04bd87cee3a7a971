"""Small helpers shared by the job-system tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from interphase.db.api import create_jobs, get_or_create_level, store_structures
from interphase.db.models import JobAttempt, LabelingJob
from interphase.db.session import transaction
from interphase.records import StructureRecord

WATER_ANGSTROM = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])


def waters(n: int, seed: int = 0) -> list[StructureRecord]:
    """``n`` distinct water geometries (small random displacements)."""
    rng = np.random.default_rng(seed)
    return [
        StructureRecord(
            numbers=np.array([8, 1, 1]),
            positions_angstrom=WATER_ANGSTROM + rng.normal(scale=0.01, size=(3, 3)),
        )
        for _ in range(n)
    ]


def queue_jobs(
    url: str,
    records: list[StructureRecord],
    *,
    level: str,
    engine: str,
    method: str,
    basis: str | None = None,
    settings: dict[str, Any] | None = None,
) -> list[int]:
    """Store ``records`` and queue one job each at a level defined here."""
    with transaction(url) as session:
        ids = store_structures(session, records, generator="test").ids
        row = get_or_create_level(session, level)
        row.engine, row.method, row.basis = engine, method, basis
        row.settings = dict(settings or {})
        session.flush()
        return [job.id for job in create_jobs(session, ids, row)]


def job_and_attempts(url: str, job_id: int) -> tuple[LabelingJob, list[JobAttempt]]:
    with transaction(url) as session:
        job = session.get_one(LabelingJob, job_id)
        attempts = list(
            session.scalars(
                select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
            )
        )
        session.expunge_all()
        return job, attempts
