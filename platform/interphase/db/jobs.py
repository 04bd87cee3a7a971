"""Labeling jobs in the database: which structures still need one, and inserting them.

Checking a job's settings against its engine is the labeling queue's business
(:func:`interphase.labeling.queue.enqueue.create_jobs`); here the settings
arrive already validated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.bulk import batches, upsert_insert
from interphase.db.models import (
    Iteration,
    Label,
    LabelingJob,
    LevelOfTheory,
    MembershipRole,
    Structure,
)

#: Rows per INSERT of :func:`insert_jobs` (well under SQLite's bound-parameter limit).
JOB_INSERT_BATCH = 500


def unlabeled_structure_ids(
    session: Session,
    level_id: int | None,
    *,
    generator: str | None = None,
    campaign_id: int | None = None,
    periodic: bool | None = None,
) -> list[int]:
    """Ids of structures with neither a label nor any labeling job at the level.

    ``level_id`` None (a level not in the database yet) has neither. Synthetic
    (``gpr-augment``) copies are never included; ``periodic`` True or False keeps
    only periodic cells or only molecules. Sorted by id.
    """
    labeled = select(Label.structure_id).where(Label.level_id == level_id)
    queued = select(LabelingJob.structure_id).where(LabelingJob.level_id == level_id)
    query = (
        select(Structure.id)
        .where(
            Structure.id.not_in(labeled),
            Structure.id.not_in(queued),
            Structure.generator != "gpr-augment",
        )
        .order_by(Structure.id)
    )
    if generator is not None:
        query = query.where(Structure.generator == generator)
    if campaign_id is not None:
        query = query.where(membership.holds(campaign_id))
    if periodic is not None:
        query = query.where((Structure.pbc != "nnn") if periodic else (Structure.pbc == "nnn"))
    return [int(i) for i in session.scalars(query).all()]


def insert_jobs(
    session: Session,
    structure_ids: Iterable[int],
    level: LevelOfTheory,
    settings: dict[str, Any],
    **fields: Any,
) -> list[LabelingJob]:
    """Pending jobs with ``settings`` for structures that have no label or open job at ``level``.

    With a ``campaign_id`` field every structure of ``structure_ids`` joins the
    campaign as picked at ``level``: it trains on the label, whoever computes it.

    Idempotent under concurrency: the partial unique index on open jobs makes a
    job that another transaction created meanwhile a no-op (``ON CONFLICT DO
    NOTHING``). Returns only the jobs this call created, oldest first.
    """
    wanted = list(dict.fromkeys(structure_ids))
    if fields.get("campaign_id") is not None:  # the campaign trains on these labels
        iteration_id = fields.get("iteration_id")
        index = 0 if iteration_id is None else session.get_one(Iteration, iteration_id).index
        membership.join(
            session, fields["campaign_id"], wanted, MembershipRole.picked, index, level.id
        )
    done: set[int] = set()
    for chunk in batches(wanted, JOB_INSERT_BATCH):
        done.update(
            session.scalars(
                select(Label.structure_id).where(
                    Label.level_id == level.id, Label.structure_id.in_(chunk)
                )
            )
        )
    # In structure-id order: two transactions inserting overlapping jobs then wait for
    # each other in one order, never in opposite orders (a deadlock on PostgreSQL).
    rows = [
        {"structure_id": sid, "level_id": level.id, "settings": settings, **fields}
        for sid in sorted(wanted)
        if sid not in done
    ]
    table = cast(Table, LabelingJob.__table__)
    jobs: list[LabelingJob] = []
    for chunk in batches(rows, JOB_INSERT_BATCH):
        statement = upsert_insert(session, table).values(chunk)
        statement = statement.on_conflict_do_nothing().returning(table.c.id)
        ids = list(session.scalars(statement))
        if ids:
            jobs += session.scalars(
                select(LabelingJob).where(LabelingJob.id.in_(ids)).order_by(LabelingJob.id)
            )
    return sorted(jobs, key=lambda job: job.id)
