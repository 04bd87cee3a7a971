"""``alembic_version`` holds exactly one revision this code knows, or the database is refused.

Interphase's migrations are one straight line, so its databases record one
revision. Several rows (another tool stamped a branch, a hand edit) or a row
this code does not know make the schema unknown: every command is refused with
one line before anything is written, and the rows are left as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Structure
from interphase.db.session import (
    SchemaVersionError,
    current_revision,
    head_revision,
    known_revisions,
    require_schema,
    transaction,
    upgrade,
)
from tests.test_cli import paper_entries

runner = CliRunner()
FUTURE = "zz_future"
HEAD = head_revision()
OLDER = known_revisions()[-2]


def one_line(output: str) -> str:
    return " ".join(output.split())


def embedded_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'interphase.sqlite').resolve()}"


def n_structures(url: str) -> int:
    with transaction(url, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(Structure)) or 0)


def _stamp(url: str, revisions: list[str]) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        for revision in revisions:
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision}
            )
    engine.dispose()


def _rows(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        found = sorted(rows)
    engine.dispose()
    return found


@pytest.mark.parametrize(
    "revisions",
    [[OLDER, FUTURE], [HEAD, FUTURE], [FUTURE, HEAD], [OLDER, HEAD]],
    ids=["older+unknown", "head+unknown", "unknown+head", "two-known"],
)
def test_several_revisions_are_refused_before_anything_is_written(
    local_env: str, tmp_path: Path, revisions: list[str]
) -> None:
    _stamp(local_env, revisions)
    paper = tmp_path / "dataset.json"
    paper.write_text(json.dumps(paper_entries()))
    for args in (["data", "import", str(paper)], ["status"], ["db", "upgrade"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        message = result.output.strip()
        assert "\n" not in message and "Traceback" not in message, message
        assert all(revision in message for revision in revisions), message
        assert "alembic_version" in one_line(message)
    assert n_structures(local_env) == 0
    assert _rows(local_env) == sorted(revisions)  # left as they were


def test_one_unknown_revision_is_refused_by_the_check(local_env: str) -> None:
    _stamp(local_env, [FUTURE])
    with pytest.raises(SchemaVersionError, match=FUTURE):
        require_schema(local_env)
    assert current_revision(local_env) == FUTURE  # reading it alone is no error


def test_one_known_revision_passes(local_env: str) -> None:
    _stamp(local_env, [HEAD])
    require_schema(local_env)
    assert runner.invoke(app, ["status"]).exit_code == 0


@pytest.mark.parametrize("revisions", [[OLDER, FUTURE], [HEAD, FUTURE]], ids=["older", "head"])
def test_the_embedded_database_with_several_revisions_is_neither_migrated_nor_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, revisions: list[str]
) -> None:
    monkeypatch.delenv("INTERPHASE_DATABASE_URL", raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(data_dir))
    url = embedded_url(data_dir)
    upgrade(url)
    _stamp(url, revisions)
    paper = tmp_path / "dataset.json"
    paper.write_text(json.dumps(paper_entries()))
    result = runner.invoke(app, ["data", "import", str(paper)])
    assert result.exit_code == 2, result.output
    assert "\n" not in result.output.strip() and FUTURE in result.output
    assert n_structures(url) == 0
    assert _rows(url) == sorted(revisions)
