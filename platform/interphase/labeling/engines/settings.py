"""The base of every engine's settings model, and one-line messages for bad settings.

Each engine declares its settings as a subclass of :class:`EngineSettings`
(``settings_model``): units in the field names, bounds on the values, a
description per field. Values are checked strictly as JSON gives them (a number
for a number, ``true``/``false`` for a flag), and only finite floats pass, so
NaN, ``inf`` and ``1e400`` (which JSON reads as ``inf``) are refused.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo


class EngineSettings(BaseModel):
    """Settings of an engine (subclasses declare the fields); every key optional."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def known_keys(model: type[BaseModel]) -> list[str]:
    """The field names of ``model``, sorted."""
    return sorted(model.model_fields)


def first_problem(
    model: type[BaseModel], settings: Mapping[str, Any], error: ValidationError, owner: str
) -> str:
    """One line naming the first bad key of ``settings``, its value and what is allowed.

    Parameters
    ----------
    owner
        Whose settings they are, for the message (``"pyscf"``, ``"the queue"``).
    """
    problem = error.errors()[0]
    key = str(problem["loc"][0]) if problem["loc"] else ""
    if problem["type"] == "extra_forbidden" or key not in model.model_fields:
        return f"{key!r} is not a {owner} setting; known: {', '.join(known_keys(model))}"
    value = settings.get(key)
    return f"{key}={value!r}: expected {expected_value(model.model_fields[key])}"


def expected_value(field: FieldInfo) -> str:
    """What a field accepts, in words: ``an integer >= 1``, ``true or false`` …"""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("expected"), str):
        return str(extra["expected"])
    kinds, optional = _kinds(field.annotation)
    words = " or ".join(kinds) + _bounds(field.metadata)
    return f"{words}, or null" if optional else words


def _kinds(annotation: Any) -> tuple[list[str], bool]:
    """Words for each type an annotation allows, and whether None is one of them."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        constraints = [m for item in args[1:] for m in getattr(item, "metadata", [item])]
        return [f"{word}{_bounds(constraints)}" for word in _kinds(args[0])[0]], False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        kinds = [word for member in members for word in _kinds(member)[0]]
        return kinds, len(members) < len(args)
    if typing.get_origin(annotation) is Literal:
        return [f"one of {', '.join(repr(a) for a in args)}"], False
    if typing.get_origin(annotation) is list:
        inner = _kinds(args[0])[0][0] if args else "values"
        return [f"a list of {_plural(inner)}"], False
    words = {
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
        dict: "a JSON object",
    }
    origin = typing.get_origin(annotation) or annotation
    return [words.get(origin, getattr(origin, "__name__", str(origin)))], False


def _plural(kind: str) -> str:
    for singular, plural in (("an integer", "integers"), ("a finite number", "numbers")):
        if kind.startswith(singular):
            return plural + kind[len(singular) :]
    return kind


def _bounds(metadata: list[Any]) -> str:
    parts = []
    lengths = {
        getattr(item, name, None) for item in metadata for name in ("min_length", "max_length")
    }
    lengths.discard(None)
    if len(lengths) == 1:
        parts.append(f"with {lengths.pop()} entries")
    for item in metadata:
        for attribute, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attribute, None)
            if isinstance(item, annotated_types.BaseMetadata) and bound is not None:
                parts.append(f"{sign} {bound:g}")
    return f" {' and '.join(parts)}" if parts else ""
