"""The settings a job runs with: each key's value and whether the job or a default set it.

A job stores only the settings given to it (``{}`` for most). What applies is
the engine's default for every key the job leaves out, as the queue validates
them at the claim (:func:`interphase.labeling.job_settings.validate_job_settings`);
the queue's limits, when the job sets none, are the worker's.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interphase.labeling.job_settings import (
    JobSettingsError,
    QueueSettings,
    engine_settings_model,
    validate_job_settings,
)


class SettingSource(enum.StrEnum):
    """Who decides a setting's value."""

    job = "set on the job"
    engine = "engine default"
    worker = "the worker's option"


@dataclass(frozen=True)
class AppliedSetting:
    key: str
    value: Any  # None with SettingSource.worker: whatever the worker runs with
    source: SettingSource
    description: str

    @property
    def shown(self) -> str:
        return "" if self.source is SettingSource.worker else json.dumps(self.value)


@dataclass(frozen=True)
class AppliedSettings:
    """Every setting of a job, or its stored settings and why they cannot be used."""

    settings: list[AppliedSetting]
    problem: str | None = None  # the queue fails such a job as InvalidInput


def applied_settings(engine: str | None, stored: Any) -> AppliedSettings:
    """The settings a job of ``engine`` with ``stored`` settings runs with."""
    try:
        given = validate_job_settings(engine, stored)
        model = engine_settings_model(engine)
    except JobSettingsError as error:
        return AppliedSettings(_as_given(stored), str(error))
    applied = []
    for owner, source in ((QueueSettings, SettingSource.worker), (model, SettingSource.engine)):
        if owner is None:
            continue
        for key, field in sorted(owner.model_fields.items()):
            description = field.description or ""
            if key in given:
                applied.append(AppliedSetting(key, given[key], SettingSource.job, description))
            else:
                default = field.get_default(call_default_factory=True)
                applied.append(AppliedSetting(key, default, source, description))
    return AppliedSettings(applied)


def _as_given(stored: Any) -> list[AppliedSetting]:
    if not isinstance(stored, Mapping):
        return []
    return [AppliedSetting(str(k), v, SettingSource.job, "") for k, v in sorted(stored.items())]
