"""One worker count: ``executor.workers``; the old ``labeling.workers`` and ``gp.workers`` load."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from interphase.campaign.config import CampaignConfig, CampaignConfigError, parse_campaign_config
from tests.campaign.conftest import TINY


def tiny(**sections: dict[str, Any]) -> dict[str, Any]:
    """The tiny campaign without any worker count, with ``sections`` merged in."""
    data = yaml.safe_load(TINY.read_text())
    data["labeling"].pop("workers", None)
    data["gp"].pop("workers", None)
    for name, fields in sections.items():
        data[name] = {**data.get(name, {}), **fields}
    return data


@pytest.mark.parametrize(
    "sections",
    [
        {"executor": {"workers": 3}},
        {"labeling": {"workers": 3}},
        {"gp": {"workers": 3}},
        {"labeling": {"workers": 3}, "gp": {"workers": 3}},
        {"labeling": {"workers": 3}, "executor": {"workers": 3}},
    ],
)
def test_every_old_key_becomes_the_executors_worker_count(sections: dict[str, Any]) -> None:
    config = CampaignConfig.model_validate(tiny(**sections))
    assert config.executor.workers == 3
    assert config.labeling.workers is None


def test_a_stored_config_keeps_only_the_one_key_and_loads_again() -> None:
    config = CampaignConfig.model_validate(tiny(labeling={"workers": 4}))
    stored = config.model_dump(mode="json")
    assert "workers" not in stored["labeling"] and "workers" not in stored["gp"]
    assert stored["executor"]["workers"] == 4
    assert CampaignConfig.model_validate(stored) == config


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"labeling": {"workers": 4}, "gp": {"workers": 2}}, ("labeling.workers", "gp.workers")),
        ({"gp": {"workers": 2}, "executor": {"workers": 8}}, ("gp.workers", "executor.workers")),
    ],
)
def test_two_different_counts_are_refused_in_one_line(
    sections: dict[str, Any], named: tuple[str, str]
) -> None:
    with pytest.raises(CampaignConfigError) as refused:
        parse_campaign_config(tiny(**sections))
    message = str(refused.value)
    assert "\n" not in message
    assert all(name in message for name in named) and "executor.workers" in message


def test_the_default_is_one_worker() -> None:
    assert CampaignConfig.model_validate(tiny()).executor.workers == 1
