"""The declarative base every table derives from, and the column type of statuses."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


def _values(members: type[enum.StrEnum]) -> list[str]:
    return [member.value for member in members]


def enum_column(members: type[enum.StrEnum], length: int = 20) -> Enum:
    """A status column: the enum's values stored as plain strings (``VARCHAR(length)``).

    Not a native (PostgreSQL) enum and no CHECK constraint, so the stored text
    and the schema are those of a ``String(length)`` column; an unknown string
    is refused when written, and reads give enum members, which compare equal
    to their strings. Columns keep a ``Mapped[str]`` annotation: callers may
    assign a member or its string.
    """
    return Enum(
        members,
        native_enum=False,
        values_callable=_values,
        validate_strings=True,
        length=length,
    )
