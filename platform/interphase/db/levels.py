"""Levels of theory in the database: the default rows, lookups and get-or-create.

A level's ``name`` is the dataset label key (``GFN2-xTB``, ``PBE-D3``). The
defaults are plain column values here; :mod:`interphase.labeling.levels` builds
its validated ``LevelSpec`` objects from them, so each default is stated once.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from interphase.db.bulk import upsert_insert
from interphase.db.models import LevelOfTheory
from interphase.db.session import transaction

_DEFAULTS: tuple[dict[str, Any], ...] = (
    {"name": "GFN2-xTB", "engine": "tblite", "method": "GFN2-xTB"},
    {
        "name": "wB97X-D3BJ_def2-TZVPD",
        "engine": "pyscf",
        "method": "wB97X-D3BJ",
        "basis": "def2-TZVPD",
        "settings": {"density_fit": True},
    },
    {
        "name": "PBE-D3",
        "engine": "gpaw",
        "method": "PBE-D3",
        "periodic": True,
        "settings": {"ecut_ry": 40.0, "kpts_bulk": [3, 3, 3], "kpts_slab": [3, 3, 1]},
    },
)
#: The default levels of DESIGN.md (column values by name); a campaign
#: configuration may override them.
DEFAULT_LEVEL_ROWS: dict[str, dict[str, Any]] = {row["name"]: row for row in _DEFAULTS}


class UnknownLevelError(KeyError):
    """A level of theory that is neither in the database nor a default level."""


class LevelCache:
    """Maps level names to ids within one session, creating unknown levels once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._ids = {
            name: id_ for id_, name in session.execute(select(LevelOfTheory.id, LevelOfTheory.name))
        }

    def id(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = get_or_create_level(self.session, name).id
        return self._ids[name]


def get_or_create_level(session: Session, name: str) -> LevelOfTheory:
    """The level named ``name``; created from the defaults (or bare) when missing.

    Race-free: concurrent first-time creation of one level inserts it once
    (``ON CONFLICT (name) DO NOTHING``) and every caller gets that row.
    """
    level = session.scalar(select(LevelOfTheory).where(LevelOfTheory.name == name))
    if level is not None:
        return level
    values: dict[str, Any] = {"name": name, **copy.deepcopy(DEFAULT_LEVEL_ROWS.get(name, {}))}
    table = cast(Table, LevelOfTheory.__table__)
    insert_level = upsert_insert(session, table).values(**values)
    session.execute(insert_level.on_conflict_do_nothing(index_elements=["name"]))
    return session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == name)).one()


def level_id(url: str | None, name: str) -> int:
    """Id of the level of theory called ``name`` (``NoResultFound`` when there is none)."""
    with transaction(url, read_only=True) as session:
        return session.scalars(select(LevelOfTheory.id).where(LevelOfTheory.name == name)).one()


def known_level_id(session: Session, name: str) -> int | None:
    """Id of the level ``name``; ``None`` for a default level not in the database yet.

    Raises
    ------
    UnknownLevelError
        When ``name`` is neither in the database nor one of the default levels.
    """
    level_id = session.scalar(select(LevelOfTheory.id).where(LevelOfTheory.name == name))
    if level_id is None and name not in DEFAULT_LEVEL_ROWS:
        raise UnknownLevelError(
            f"no level of theory named {name!r} in the database; default levels: "
            f"{', '.join(DEFAULT_LEVEL_ROWS)}"
        )
    return level_id
