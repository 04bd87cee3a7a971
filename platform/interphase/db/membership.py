"""Which structures, labels and jobs belong to a campaign: the membership relation.

Structures are stored once, by content hash, and shared by every campaign that
generates, explores or imports them (:class:`~interphase.db.models.CampaignStructure`).
A campaign's view of the database goes through here:

- its structures: any membership;
- its test split: role ``test``;
- its reference labels: a label at level L of a structure the campaign holds as
  ``picked`` or ``seed`` at L (computed by it, or an existing label it reused);
- its synthetic labels: those predicted by its own GPs;
- its jobs: the jobs it queued, and any open job of another campaign at a
  structure and level it picked (it waits for that job, and may run it,
  instead of queueing a second one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, exists, or_, select
from sqlalchemy.orm import Session

from interphase.db.bulk import upsert_insert
from interphase.db.models import (
    TRAINING_ROLES,
    CampaignStructure,
    GPRModel,
    Label,
    LabelingJob,
    MembershipRole,
    Structure,
    SyntheticLabel,
)

#: Rows per INSERT (well under SQLite's bound-parameter limit).
_BATCH = 500


def join(
    session: Session,
    campaign_id: int,
    structure_ids: Iterable[int],
    role: MembershipRole,
    iteration_index: int,
    level_id: int | None = None,
) -> int:
    """Add ``structure_ids`` to the campaign in ``role``; returns how many were new.

    Idempotent: a membership that exists keeps its first iteration.
    """
    ids = list(dict.fromkeys(int(i) for i in structure_ids))
    table = cast(Table, CampaignStructure.__table__)
    added = 0
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        have = set(
            session.scalars(
                select(CampaignStructure.structure_id).where(
                    CampaignStructure.campaign_id == campaign_id,
                    CampaignStructure.role == role.value,
                    CampaignStructure.level_id.is_(None)
                    if level_id is None
                    else CampaignStructure.level_id == level_id,
                    CampaignStructure.structure_id.in_(chunk),
                )
            )
        )
        rows: list[dict[str, Any]] = [
            {
                "campaign_id": campaign_id,
                "structure_id": i,
                "role": role.value,
                "level_id": level_id,
                "iteration_index": iteration_index,
            }
            for i in chunk
            if i not in have
        ]
        if rows:
            statement = upsert_insert(session, table).values(rows).on_conflict_do_nothing()
            session.execute(statement)
            added += len(rows)
    return added


def join_seeds(session: Session, campaign_id: int, pairs: Iterable[tuple[int, int]]) -> None:
    """Join (structure id, level id) pairs to the campaign as seed members of iteration 0."""
    by_level: dict[int, list[int]] = defaultdict(list)
    for structure_id, level_id in pairs:
        by_level[level_id].append(structure_id)
    for level_id, ids in by_level.items():
        join(session, campaign_id, ids, MembershipRole.seed, 0, level_id)


def member(campaign_id: int, *roles: MembershipRole) -> Any:
    """Ids of the campaign's structures (in any of ``roles``; all roles when none)."""
    query = select(CampaignStructure.structure_id).where(
        CampaignStructure.campaign_id == campaign_id
    )
    if roles:
        query = query.where(CampaignStructure.role.in_([r.value for r in roles]))
    return query


def holds(campaign_id: int, *roles: MembershipRole) -> ColumnElement[bool]:
    """``Structure.id`` is one of the campaign's structures (in one of ``roles``)."""
    return Structure.id.in_(member(campaign_id, *roles))


def test_ids(session: Session, campaign_id: int) -> set[int]:
    """The campaign's fixed test split."""
    return {int(i) for i in session.scalars(member(campaign_id, MembershipRole.test))}


def picked_at(campaign_id: int, structure_id: Any, level_id: Any) -> ColumnElement[bool]:
    """The campaign holds ``structure_id`` as picked or seed at ``level_id`` (SQL)."""
    return exists().where(
        CampaignStructure.campaign_id == campaign_id,
        CampaignStructure.structure_id == structure_id,
        CampaignStructure.level_id == level_id,
        CampaignStructure.role.in_(TRAINING_ROLES),
    )


def training_label(campaign_id: int) -> ColumnElement[bool]:
    """A ``Label`` row is one of the campaign's reference labels (test labels included)."""
    return picked_at(campaign_id, Label.structure_id, Label.level_id)


def own_synthetic(campaign_id: int) -> ColumnElement[bool]:
    """A ``SyntheticLabel`` row was predicted by one of the campaign's GPs."""
    return SyntheticLabel.gpr_model_id.in_(
        select(GPRModel.id).where(GPRModel.campaign_id == campaign_id)
    )


def campaign_job(campaign_id: int) -> ColumnElement[bool]:
    """A ``LabelingJob`` the campaign runs or waits for.

    Its own jobs, and the open jobs of others at a structure and level it
    picked: a label both need is computed once, by whichever worker claims it.
    """
    shared = and_(
        LabelingJob.state.in_(("pending", "running")),
        picked_at(campaign_id, LabelingJob.structure_id, LabelingJob.level_id),
    )
    return or_(LabelingJob.campaign_id == campaign_id, shared)
