"""Status columns are string enums: stored as the same text, compared as strings.

The enum columns (``enum_column``) keep the ``VARCHAR(20)`` schema of the plain
strings they replaced, so a database migrated by the existing revisions holds
exactly what the models describe, and rows written before the change read back
as enum members.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from interphase.db.levels import DEFAULT_LEVEL_ROWS
from interphase.db.models import (
    Base,
    Campaign,
    CampaignState,
    CampaignStep,
    Iteration,
    IterationStatus,
    StepState,
    TrainingRun,
    TrainingStatus,
)
from interphase.db.session import make_engine, transaction
from interphase.labeling.levels import DEFAULT_LEVELS


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    with make_engine(db_url).connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLite cannot reflect expression indexes
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _campaign_rows(db_url: str) -> int:
    """A campaign, an iteration, a step and a training run written with plain strings."""
    with transaction(db_url) as session:
        campaign = Campaign(name="statuses", config={}, state="running")
        session.add(campaign)
        session.flush()
        iteration = Iteration(campaign_id=campaign.id, index=0, status="running")
        session.add(iteration)
        session.flush()
        session.add(
            CampaignStep(
                campaign_id=campaign.id, iteration_id=iteration.id, iteration_index=0, name="fit"
            )
        )
        empty = np.zeros(0, dtype=np.int64)
        session.add(TrainingRun(label_ids=empty, synthetic_label_ids=empty, status="interrupted"))
        return campaign.id


def test_statuses_are_stored_as_their_text_and_read_as_members(db_url: str) -> None:
    campaign_id = _campaign_rows(db_url)
    with transaction(db_url) as session:
        raw = session.execute(
            text(
                "SELECT c.state, i.status, s.state, t.status FROM campaign c "
                "JOIN iteration i ON i.campaign_id = c.id "
                "JOIN campaign_step s ON s.iteration_id = i.id, training_run t"
            )
        ).one()
        assert tuple(raw) == ("running", "running", "running", "interrupted")
        campaign = session.get_one(Campaign, campaign_id)
        iteration = campaign.iterations[0]
        assert campaign.state is CampaignState.running and campaign.state == "running"
        assert iteration.status is IterationStatus.running and f"{iteration.status}" == "running"
        step = session.scalars(select(CampaignStep)).one()
        assert step.state is StepState.running
        run = session.scalars(select(TrainingRun)).one()
        assert run.status is TrainingStatus.interrupted
        # Strings and members both assign and filter.
        iteration.status, run.status = "succeeded", TrainingStatus.succeeded
        campaign.state = CampaignState.finished.value
    with transaction(db_url) as session:
        succeeded = select(Iteration.id).where(Iteration.status == "succeeded")
        assert session.scalars(succeeded).all() == [iteration.id]
        assert session.scalar(select(TrainingRun.status)) == "succeeded"
        assert session.scalar(select(Campaign.state)) is CampaignState.finished


def test_an_unknown_status_is_refused_when_written(db_url: str) -> None:
    campaign_id = _campaign_rows(db_url)
    with pytest.raises(StatementError, match="done"), transaction(db_url) as session:
        session.get_one(Campaign, campaign_id).iterations[0].status = "done"
    with transaction(db_url) as session:
        assert session.scalar(select(Iteration.status)) == "running"


def test_the_default_level_rows_are_the_validated_default_levels() -> None:
    assert set(DEFAULT_LEVEL_ROWS) == set(DEFAULT_LEVELS)
    for name, row in DEFAULT_LEVEL_ROWS.items():
        spec = DEFAULT_LEVELS[name].model_dump()
        assert {key: spec[key] for key in row} == row
