"""``structures list``, ``jobs create --set`` and the help text (issue 20, item 26)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from interphase.db.models import LabelingJob
from interphase.db.session import transaction
from tests.cli.conftest import TINY, invoke, one_line_error, row_counts
from tests.cli.test_jobs_commands import table_rows


def test_structures_list_shows_ids_campaigns_and_labels_newest_first(
    local_env: str, paper_file: Path
) -> None:
    assert invoke("campaign", "register", str(TINY)).exit_code == 0
    imported = invoke("data", "import", str(paper_file), "--campaign", "tiny")
    assert imported.exit_code == 0, imported.output
    generated = invoke("generate", "lattice", "--packing", "bcc", "--n", "1")
    assert generated.exit_code == 0, generated.output

    result = invoke("structures", "list")
    assert result.exit_code == 0, result.output
    header, *rows = table_rows(result.output)
    assert header == ["id", "formula", "atoms", "generator", "campaigns", "labels"]
    ids = [int(row[0]) for row in rows]
    assert ids == sorted(ids, reverse=True) and len(ids) > 3  # newest first
    assert rows[0][3].startswith("lattice_") and rows[0][4:] == ["", ""]  # generated last
    water = next(row for row in rows if row[1] == "H2O")
    assert water[2:] == ["3", "import", "tiny", "GFN2-xTB, wB97X-D3BJ_def2-TZVPD"]

    def listed(*options: str) -> list[str]:
        shown = invoke("structures", "list", *options)
        assert shown.exit_code == 0, shown.output
        return [row[1] for row in table_rows(shown.output)[1:]]

    assert sorted(listed("--campaign", "tiny")) == ["H2O", "Li", "Li2"]
    assert listed("--level", "GFN2-xTB") == ["H2O"]
    assert listed("--generator", "import", "--level", "PBE-D3") == ["Li2"]
    limited = invoke("structures", "list", "--limit", "2")
    assert len(table_rows(limited.output)) == 3
    assert f"the newest 2 of {len(ids)} matching structures" in limited.output
    line = one_line_error(invoke("structures", "list", "--generator", "nope"))
    assert "no structures made by generator 'nope'" in line and "import" in line
    line = one_line_error(invoke("structures", "list", "--level", "MP2"))
    assert "no level of theory 'MP2'" in line and "GFN2-xTB" in line


def test_jobs_create_takes_settings_and_refuses_bad_ones_storing_nothing(
    local_env: str, paper_file: Path
) -> None:
    assert invoke("data", "import", str(paper_file)).exit_code == 0
    before = row_counts(local_env)
    line = one_line_error(
        invoke("jobs", "create", "--level", "GFN2-xTB", "--set", "no_such_setting=1")
    )
    assert "no_such_setting" in line
    assert row_counts(local_env) == before

    result = invoke(
        "jobs", "create", "--level", "GFN2-xTB", "2", "--set", "max_iterations=300",
        "--set", "time_limit_s=600",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "queued 1 job(s)" in result.output
    with transaction(local_env, read_only=True) as session:
        job = session.scalars(select(LabelingJob)).one()
        assert (job.structure_id, job.settings) == (2, {"max_iterations": 300, "time_limit_s": 600})


def test_gpr_help_says_what_the_commands_do() -> None:
    result = invoke("gpr", "--help")
    assert result.exit_code == 0
    assert "paper" not in result.output
    assert "Gaussian-process" in result.output
