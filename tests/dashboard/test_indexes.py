"""Migration 0004d: the dashboard's indexes exist as the models declare them, and downgrade."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from interphase.db.models import Base
from interphase.db.session import _alembic_config, make_engine, upgrade

DASHBOARD_INDEXES = {
    "ix_labeling_job_state_id",
    "ix_labeling_job_error_class_id",
    "ix_labeling_job_iteration_id",
    "ix_labeling_job_campaign_updated",
    "ix_labeling_job_structure_id",
    "ix_synthetic_label_structure_id",
}


def _indexes(url: str) -> dict[str, list[str]]:
    inspector = inspect(make_engine(url))
    return {
        index["name"]: list(index["column_names"])
        for table in ("labeling_job", "synthetic_label")
        for index in inspector.get_indexes(table)
        if index["name"]
    }


def test_indexes_match_the_models_and_downgrade(db_url: str) -> None:
    declared = {
        index.name: [column.name for column in index.columns]
        for table in ("labeling_job", "synthetic_label")
        for index in Base.metadata.tables[table].indexes
    }
    found = _indexes(db_url)
    assert set(declared) >= DASHBOARD_INDEXES
    for name in DASHBOARD_INDEXES:
        assert found[name] == declared[name], name
    command.downgrade(_alembic_config(db_url), "0003")
    make_engine(db_url).dispose()
    assert not DASHBOARD_INDEXES & set(_indexes(db_url))
    upgrade(db_url)
    assert set(_indexes(db_url)) >= DASHBOARD_INDEXES
