"""A real campaign for the campaign views: ``tests/campaign/tiny.yaml`` run to its end.

Two xTB levels, every step of two iterations (generate, label, fit, select,
refit, augment, train, explore, evaluate, summary): real tblite labels, GPs,
candidate scores, synthetic labels, training runs with epoch metrics and
parity files. Built once per test module, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from interphase.campaign.config import load_campaign_config
from interphase.campaign.run import RunOutcome, register_campaign, run_campaign
from interphase.db.models import Campaign
from interphase.db.session import make_engine, transaction, upgrade
from tests.campaign.conftest import TINY
from tests.conftest import POSTGRES_ADMIN_URL, _admin_execute

#: A campaign name that would run as script if any page failed to escape it.
HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'


@dataclass(frozen=True)
class RealCampaign:
    url: str
    data_dir: Path
    campaign_id: int
    name: str
    outcome: RunOutcome


@contextmanager
def module_database(backend: str, directory: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty, migrated database that lives as long as a test module."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'interphase.sqlite'}"
        upgrade(url)
        yield url
        make_engine(url).dispose()
        return
    template = request.getfixturevalue("postgres_template")
    name = f"interphase_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    assert POSTGRES_ADMIN_URL is not None
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False)
    try:
        yield url
    finally:
        make_engine(url).dispose()
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_tiny(
    url: str, monkeypatch: pytest.MonkeyPatch, data_dir: Path, name: str | None = None
) -> RealCampaign:
    """Register and run ``tiny.yaml`` (as ``name`` when given) to its end on ``url``."""
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", url)
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(data_dir))
    config = load_campaign_config(TINY, name=name)
    campaign_id = register_campaign(url, config)
    outcome = run_campaign(url, config.name)
    with transaction(url, read_only=True) as session:
        assert (
            session.scalar(select(Campaign.state).where(Campaign.id == campaign_id)) == "finished"
        )
    return RealCampaign(url, data_dir, campaign_id, config.name, outcome)
