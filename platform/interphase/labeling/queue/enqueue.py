"""Queueing labeling jobs: the level's settings checked against its engine, then stored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from interphase.db.jobs import insert_jobs
from interphase.db.models import LabelingJob, LevelOfTheory
from interphase.labeling.job_settings import validate_job_settings


def create_jobs(
    session: Session,
    structure_ids: Iterable[int],
    level: LevelOfTheory,
    **fields: Any,
) -> list[LabelingJob]:
    """Pending labeling jobs for structures that have no label or open job at ``level``.

    With a ``campaign_id`` field every structure of ``structure_ids`` joins the
    campaign as picked at ``level``. Idempotent under concurrency; returns only
    the jobs this call created, oldest first (:func:`~interphase.db.jobs.insert_jobs`).

    Raises
    ------
    JobSettingsError
        When the level's settings are not valid for its engine (nothing is stored).
    """
    settings = validate_job_settings(level.engine, level.settings or {})
    return insert_jobs(session, structure_ids, level, settings, **fields)
