"""Distinct values of an indexed column without reading every row (a loose index scan).

``SELECT DISTINCT generator FROM structure`` reads all 200,000 index entries;
walking the index from each value to the next one (a recursive query, one
index lookup per distinct value) reads a handful. Works on PostgreSQL and SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased


def distinct_values(session: Session, column: InstrumentedAttribute[Any]) -> list[Any]:
    """The column's distinct non-NULL values, sorted (the column must be indexed first)."""
    entity = column.class_
    name = column.key
    walker = aliased(entity)
    steps = select(func.min(column).label("value")).cte("steps", recursive=True)
    following = select(func.min(getattr(walker, name))).where(getattr(walker, name) > steps.c.value)
    steps = steps.union_all(select(following.scalar_subquery()).where(steps.c.value.is_not(None)))
    values = session.scalars(select(steps.c.value).where(steps.c.value.is_not(None)))
    return list(values)
