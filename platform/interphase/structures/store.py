"""Storing a generated batch in the provenance database, with lineage.

Goes through :func:`interphase.db.structures.store_structures`; a parent is always
stored before its children, so a child's ``parent_id`` is its parent's row.
The caller owns the transaction (one per ``interphase generate`` call).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from interphase.db.models import MembershipRole
from interphase.db.structures import store_structures
from interphase.structures.batch import GenerationBatch


@dataclass
class StoredBatch:
    """Database ids of a batch's structures (in batch order) and how many were new."""

    ids: list[int]
    n_new: int


def store_batch(
    session: Session,
    batch: GenerationBatch,
    *,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    role: MembershipRole | None = None,
) -> StoredBatch:
    """Store every accepted structure of ``batch`` with generator, params, seed and parent.

    A structure already in the database (same content hash) keeps its row and
    is not counted as new; with ``campaign_id`` and ``role`` it joins the
    campaign all the same.
    """
    ids: list[int] = []
    n_new = 0
    for item in batch.items:
        parent_id = ids[item.parent] if item.parent is not None else item.parent_id
        result = store_structures(
            session,
            [item.record],
            generator=item.generator,
            generator_params=item.params,
            seeds=[item.seed],
            parent_ids=[parent_id],
            campaign_id=campaign_id,
            iteration_id=iteration_id,
            role=role,
        )
        ids.append(result.ids[0])
        n_new += int(result.new[0])
    return StoredBatch(ids=ids, n_new=n_new)
