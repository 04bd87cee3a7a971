"""Starting a campaign from labels already in the database.

A campaign's ``seed_data`` selects labeled structures (imported from a file,
of a generator, trained on by another campaign, at given levels). They join
the campaign in iteration 0 as ``seed`` members at each label's level: the
campaign fits and trains on those labels and never queues a job for them.
The selection is streamed in chunks of label ids, so a dataset of hundreds of
thousands of entries never sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.config_sections import SeedDataConfig
from interphase.campaign.records import find_campaign
from interphase.db import membership
from interphase.db.models import Label, Structure

#: Labels read per query while seeding.
CHUNK = 5000


def seed_campaign(
    session: Session,
    campaign_id: int,
    selector: SeedDataConfig,
    level_ids: dict[str, int],
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Join the labeled structures ``selector`` picks as seed members; returns labels seeded.

    ``level_ids`` maps the campaign's routed level names to their ids: only
    labels at those levels (or at ``selector.levels``) are seeded.

    Raises
    ------
    CampaignNotFoundError
        When ``selector.campaign`` names no campaign.
    """
    names = selector.levels or list(level_ids)
    wanted = [level_ids[name] for name in names if name in level_ids]
    query = select(Label.id, Label.structure_id, Label.level_id).where(
        Label.level_id.in_(wanted), Label.total_energy_hartree.is_not(None)
    )
    if selector.file is not None or selector.generator is not None:
        structures = select(Structure.id)
        if selector.file is not None:
            structures = structures.where(
                Structure.generator_params["source"].as_string() == selector.file
            )
        if selector.generator is not None:
            structures = structures.where(Structure.generator == selector.generator)
        query = query.where(Label.structure_id.in_(structures))
    if selector.campaign is not None:
        other = find_campaign(session, selector.campaign)
        query = query.where(membership.training_label(other.id))
    seeded, last = 0, 0
    while True:
        rows = session.execute(query.where(Label.id > last).order_by(Label.id).limit(CHUNK)).all()
        if not rows:
            return seeded
        membership.join_seeds(session, campaign_id, [(int(s), int(lvl)) for _, s, lvl in rows])
        seeded += len(rows)
        last = int(rows[-1][0])
        if progress is not None:
            progress(seeded, None)
