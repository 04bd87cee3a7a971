"""Claiming a pending labeling job: one short transaction that starts an attempt under a lease.

A worker claims a pending job in its own short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so
two workers never run the same job. The claim gives the worker a lease that a
:func:`~interphase.labeling.queue.lease.job_heartbeat` renews while the job runs.
At the claim the job's stored settings are validated (invalid ones fail the
job as ``InvalidInput``, never the worker) and a label the structure already
has at the level is noticed (the job succeeds without computing).
"""

from __future__ import annotations

import socket
from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob, LevelOfTheory, utcnow
from interphase.db.session import transaction
from interphase.db.structures import record_from_row
from interphase.labeling.engines import ENGINES, UnknownEngineError, get_engine
from interphase.labeling.engines.contract import Calculation, EngineError, InvalidInput
from interphase.labeling.isolation.run import Limits
from interphase.labeling.job_settings import JobSettingsError, split_settings, validate_job_settings
from interphase.labeling.queue.outcome import FIRST_ATTEMPT, ClaimedJob
from interphase.labeling.queue.worker_options import WorkerOptions


def claim_job(
    url: str | None,
    *,
    worker: str,
    level_id: int | None = None,
    engine: str | None = None,
    campaign_id: int | None = None,
    options: WorkerOptions | None = None,
) -> ClaimedJob | None:
    """Atomically move one pending job to running under a lease; None when none is left.

    ``level_id``, ``engine`` and ``campaign_id`` restrict the claim to those jobs
    (a campaign's: its own and the open jobs of others it waits for).
    """
    options = options or WorkerOptions()
    with transaction(url) as session:
        query = select(LabelingJob).where(LabelingJob.state == JobState.pending)
        if campaign_id is not None:
            query = query.where(membership.campaign_job(campaign_id))
        if level_id is not None:
            query = query.where(LabelingJob.level_id == level_id)
        if engine is not None:
            level_ids = select(LevelOfTheory.id).where(LevelOfTheory.engine == engine)
            query = query.where(LabelingJob.level_id.in_(level_ids))
        job = session.scalar(
            query.order_by(LabelingJob.id).limit(1).with_for_update(skip_locked=True)
        )
        if job is None:
            return None
        return _claim(session, job, worker, options)


def _claim(session: Session, job: LabelingJob, worker: str, options: WorkerOptions) -> ClaimedJob:
    level = session.get_one(LevelOfTheory, job.level_id)
    engine_name = level.engine or ""
    now = utcnow()
    job.state = JobState.running
    job.attempt += 1
    job.worker = worker
    job.lease_expires_at = now + timedelta(seconds=options.lease_s)
    job.heartbeat_at = now
    trigger = job.requeued_by or FIRST_ATTEMPT
    job.requeued_by = None
    stored: Any = job.settings
    session.add(
        JobAttempt(
            job_id=job.id,
            number=job.attempt,
            engine=engine_name,
            engine_version=_engine_version(engine_name),
            settings=stored,
            host=socket.gethostname(),
            worker=worker,
            trigger=trigger,
            heartbeat_at=now,
        )
    )
    existing = session.scalar(
        select(Label.id).where(Label.structure_id == job.structure_id, Label.level_id == level.id)
    )
    refusal, settings = _usable_settings(job.id, engine_name, stored)
    control, engine_settings = split_settings(settings)
    limits = Limits(
        time_limit_s=control.time_limit_s or options.time_limit_s,
        memory_limit_mb=control.memory_limit_mb or options.memory_limit_mb,
    )
    own_limit = control.time_limit_s is not None or control.memory_limit_mb is not None
    return ClaimedJob(
        job_id=job.id,
        attempt=job.attempt,
        engine=engine_name,
        level_name=level.name,
        structure=record_from_row(job.structure),
        calculation=Calculation(level.method or "", level.basis, engine_settings),
        limits=limits,
        reference_energies_hartree=dict(level.reference_energies_hartree or {}),
        isolate=own_limit or bool(options.isolate) or _engine_isolates(engine_name),
        refusal=refusal,
        existing_label_id=None if existing is None else int(existing),
    )


def _usable_settings(
    job_id: int, engine: str, stored: Any
) -> tuple[InvalidInput | None, dict[str, Any]]:
    """(why the stored settings cannot be used, the settings to run with)."""
    if engine not in ENGINES:  # nothing to check them against; the run says EngineUnavailable
        return None, {}
    try:
        return None, validate_job_settings(engine, stored)
    except JobSettingsError as error:
        return InvalidInput(
            f"stored settings cannot be used: {error}; fix them with "
            f"`interphase jobs resubmit {job_id} --set KEY=VALUE` or `--unset KEY`"
        ), {}


def _engine_isolates(name: str) -> bool:
    return name in ENGINES and ENGINES[name].isolate


def _engine_version(name: str | None) -> str | None:
    try:
        return get_engine(name or "").version()
    except (UnknownEngineError, ImportError, PackageNotFoundError, EngineError):
        return None
