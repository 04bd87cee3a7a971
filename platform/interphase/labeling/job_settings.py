"""Job settings: the queue's own keys plus the engine's, validated before they are stored.

A job's settings are one JSON object. ``time_limit_s`` and ``memory_limit_mb``
belong to the queue (:class:`QueueSettings`) and apply to every engine; every
other key belongs to the job's engine and is checked against its
``settings_model``. :func:`validate_job_settings` runs wherever settings are
stored (``jobs create``, ``jobs resubmit --set/--unset``, level settings) and
again when a worker claims a job, so a setting written by hand or by an older
version fails only that job (``InvalidInput``), never the worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationError

from interphase.labeling.engines import ENGINES
from interphase.labeling.engines.settings import EngineSettings, first_problem


class JobSettingsError(ValueError):
    """A job setting is unknown or has a value its engine or the queue cannot use."""


class QueueSettings(EngineSettings):
    """The job settings the queue reads itself, for jobs of every engine.

    A job that sets either runs in its own process (tblite included), so the
    limit is enforced.
    """

    time_limit_s: float | None = Field(
        default=None,
        gt=0,
        description="Wall-time limit of one attempt (s); past it the calculation is killed.",
        json_schema_extra={"expected": "a positive number of seconds"},
    )
    memory_limit_mb: float | None = Field(
        default=None,
        gt=0,
        description="Address-space limit of the calculation's process (MB).",
        json_schema_extra={"expected": "a positive number of megabytes"},
    )


#: Job settings read by the queue itself, never passed to an engine.
CONTROL_KEYS = frozenset(QueueSettings.model_fields)


def engine_settings_model(engine: str | None) -> type[EngineSettings] | None:
    """The settings model of ``engine``; None for a level without an engine.

    Raises
    ------
    JobSettingsError
        When ``engine`` is a name no engine is registered under.
    """
    if not engine:
        return None
    if engine not in ENGINES:
        raise JobSettingsError(
            f"unknown engine {engine!r}; known engines: {', '.join(sorted(ENGINES))}"
        )
    return ENGINES[engine].settings_model


def known_settings(engine: str | None) -> list[str]:
    """Every key a job of ``engine`` may set (its engine's and the queue's), sorted."""
    model = engine_settings_model(engine)
    return sorted(CONTROL_KEYS | set(model.model_fields if model is not None else ()))


def validate_job_settings(engine: str | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` checked against the queue's keys and ``engine``'s model.

    Returns
    -------
    dict
        The settings as given (defaults are not filled in), normalised to
        JSON-safe values, control keys included.

    Raises
    ------
    JobSettingsError
        One line naming the first bad key, its value and the allowed values.
    """
    if not isinstance(settings, Mapping):
        raise JobSettingsError(
            f"job settings must be a JSON object of key: value pairs, not {settings!r}"
        )
    model = engine_settings_model(engine)
    for key in settings:
        if key not in CONTROL_KEYS and (model is None or key not in model.model_fields):
            owner = f"a {engine}" if engine else "a queue (the level has no engine)"
            raise JobSettingsError(
                f"{key!r} is not {owner} setting; known: {', '.join(known_settings(engine))}"
            )
    control = {k: v for k, v in settings.items() if k in CONTROL_KEYS}
    own = {k: v for k, v in settings.items() if k not in CONTROL_KEYS}
    normalised = _validated(QueueSettings, control, "queue")
    if model is not None:
        normalised.update(_validated(model, own, str(engine)))
    return {key: normalised[key] for key in settings}


def _validated(model: type[EngineSettings], values: dict[str, Any], owner: str) -> dict[str, Any]:
    try:
        parsed = model.model_validate(values)
    except ValidationError as error:
        raise JobSettingsError(first_problem(model, values, error, owner)) from None
    return parsed.model_dump(mode="json", exclude_unset=True)


def changed_settings(
    current: Mapping[str, Any],
    set_: Mapping[str, Any],
    unset: Sequence[str],
    engine: str | None,
) -> dict[str, Any]:
    """``current`` with ``set_`` applied, then the keys in ``unset`` removed, validated.

    Raises
    ------
    JobSettingsError
        For a bad key or value in the result, or an ``unset`` key that is
        neither set nor a known setting.
    """
    new = {**current, **set_}
    known = known_settings(engine)
    for key in unset:
        if key not in new and key not in known:
            raise JobSettingsError(
                f"--unset {key!r}: not a setting of this job; known: {', '.join(known)}"
            )
        new.pop(key, None)
    return validate_job_settings(engine, new)


def split_settings(settings: Mapping[str, Any]) -> tuple[QueueSettings, dict[str, Any]]:
    """(the queue's keys as a model, the engine's keys) of validated settings."""
    control = {k: v for k, v in settings.items() if k in CONTROL_KEYS}
    return QueueSettings.model_validate(control), {
        k: v for k, v in settings.items() if k not in CONTROL_KEYS
    }
