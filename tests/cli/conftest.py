"""Helpers for the command-line tests: the real CLI on a real database.

The campaign fixtures (a database, a data directory and one Prefect server per
test session) are those of ``tests/campaign``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Base
from interphase.db.session import transaction
from tests.campaign.conftest import campaign_env, prefect_url  # noqa: F401 (fixtures)
from tests.test_cli import paper_entries

runner = CliRunner()
TINY = Path(__file__).parents[1] / "campaign" / "tiny.yaml"


def invoke(*args: str) -> Result:
    """``interphase ARGS`` in this process (stdout and stderr together in ``output``)."""
    return runner.invoke(app, list(args))


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def one_line_error(result: Result) -> str:
    """The only line a refused command printed: exit status 2, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    printed = lines(result.output)
    assert len(printed) == 1, result.output
    assert printed[0].startswith("error: "), printed[0]
    return printed[0]


def row_counts(url: str) -> dict[str, int]:
    """Rows in every table: equal before and after means the database is unchanged."""
    with transaction(url, read_only=True) as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def paper_file(tmp_path: Path) -> Path:
    """Three entries: water (with a GFN2-xTB label), Li+ and a periodic Li cell."""
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(paper_entries()))
    return path
