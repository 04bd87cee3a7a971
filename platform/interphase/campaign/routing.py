"""Which structures each level of theory labels."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.config_sections import RouteConfig
from interphase.db.models import Structure


def routed(session: Session, route: RouteConfig, structure_ids: list[int]) -> list[int]:
    """The ids (in the given order) of structures ``route`` labels."""
    if not structure_ids:
        return []
    rows = session.execute(
        select(Structure.id, Structure.pbc, Structure.n_atoms).where(
            Structure.id.in_(structure_ids)
        )
    ).all()
    keep = set()
    for structure_id, pbc, n_atoms in rows:
        periodic = pbc != "nnn"
        if route.structures == "periodic" and not periodic:
            continue
        if route.structures == "molecular" and periodic:
            continue
        if route.max_atoms is not None and n_atoms > route.max_atoms:
            continue
        keep.add(int(structure_id))
    return [i for i in structure_ids if i in keep]
