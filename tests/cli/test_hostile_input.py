"""Hostile strings on the command line: one line, exit status 2, the database unchanged.

Rich markup (``x[/]``), a NUL character, numbers too large for any integer
column, and bytes that are not UTF-8 go into the string arguments of a
representative set of commands. And a campaign whose name is markup runs end
to end: validate, run, list and show print the name as it is (issue 20, item 1).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.campaign.conftest import CampaignEnv
from tests.cli.conftest import TINY, invoke, lines, one_line_error, row_counts

MARKUP_NAME = "x[/]y[bold]"

HOSTILE = {
    "closing-tag": "x[/]",
    "tag-assignment": "[/x]=1",
    "style-tag": "[bold]",
    "nul": "a\x00b",
    "huge-integer": "99999999999999999999999",
    "thousands-of-digits": "9" * 5000,
    "not-utf8": os.fsdecode(b"\xff"),
}

#: Commands with one string argument (``{}``) to fill with each hostile value.
COMMANDS = {
    "campaign-show": ["campaign", "show", "{}"],
    "campaign-validate": ["campaign", "validate", "{}"],
    "campaign-schedule-name": ["campaign", "schedule", "{}", "--interval", "1h"],
    "campaign-schedule-interval": ["campaign", "schedule", "tiny", "--interval", "{}"],
    "campaign-export": ["campaign", "export", "{}"],
    "jobs-create-level": ["jobs", "create", "--level", "{}"],
    "jobs-create-set": ["jobs", "create", "--level", "GFN2-xTB", "--set", "{}"],
    "jobs-create-ids": ["jobs", "create", "--level", "GFN2-xTB", "{}"],
    "jobs-show": ["jobs", "show", "{}"],
    "jobs-resubmit-set": ["jobs", "resubmit", "1", "--set", "{}"],
    "jobs-resubmit-set-value": ["jobs", "resubmit", "1", "--set", "max_iterations={}"],
    "jobs-cancel-campaign": ["jobs", "cancel", "--campaign", "{}"],
    "jobs-run-engine": ["jobs", "run", "--engine", "{}"],
    "jobs-run-workers": ["jobs", "run", "--workers", "{}"],
    "data-import": ["data", "import", "{}"],
    "data-import-path": ["data", "import", "/no/{}.xyz"],
    "gpr-select-level": ["gpr", "select", "--threshold", "1", "--level", "{}"],
    "structures-list-campaign": ["structures", "list", "--campaign", "{}"],
    "structures-list-level": ["structures", "list", "--level", "{}"],
}


#: Commands whose refusal names the value given.
NAMED = {"campaign", "data", "structures"}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=list(COMMANDS))
def test_hostile_strings_give_one_line_exit_2_and_change_nothing(
    local_env: str,
    paper_file: Path,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))  # `schedule` imports Prefect
    assert invoke("data", "import", str(paper_file)).exit_code == 0
    assert invoke("jobs", "create", "--level", "GFN2-xTB").exit_code == 0
    before = row_counts(local_env)
    for name, value in HOSTILE.items():
        args = [part.replace("{}", value) for part in command]
        result = invoke(*args)
        line = one_line_error(result)
        if name in ("closing-tag", "style-tag") and command[0] in NAMED:
            assert value in line, line  # printed as it is, not read as markup
        assert row_counts(local_env) == before, (name, args)


def test_a_file_whose_path_is_markup_imports(local_env: str, paper_file: Path) -> None:
    folder = paper_file.parent / "x["
    folder.mkdir()
    named = folder / "]y[bold].json"  # .../x[/]y[bold].json
    named.write_text(paper_file.read_text())
    result = invoke("data", "import", str(named))
    assert result.exit_code == 0, result.output
    assert "3 new structures" in result.output
    missing = folder / "]missing[bold].xyz"
    assert f"{MARKUP_NAME[:4]}missing[bold].xyz" in one_line_error(
        invoke("data", "import", str(missing))
    )


@pytest.mark.slow
def test_a_campaign_named_with_markup_validates_runs_lists_and_shows(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    config = tmp_path / "markup.yaml"
    config.write_text(TINY.read_text().replace("name: tiny", f"name: {json.dumps(MARKUP_NAME)}"))
    validated = invoke("campaign", "validate", str(config))
    assert validated.exit_code == 0, validated.output
    assert f"campaign {MARKUP_NAME!r}" in validated.output

    ran = campaign_env.cli("campaign", "run", str(config), "--iterations", "1", COLUMNS="")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr and f"campaign {MARKUP_NAME!r}: finished" in ran.stdout

    listed = campaign_env.cli("campaign", "list", COLUMNS="")
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith(f"│ {MARKUP_NAME} ") for line in lines(listed.stdout))
    shown = campaign_env.cli("campaign", "show", MARKUP_NAME, COLUMNS="")
    assert shown.returncode == 0, shown.stderr
    assert lines(shown.stdout)[0] == f"campaign {MARKUP_NAME}"
    # Piped, nothing is cut or folded: each level's job count stays on its line.
    assert re.search(r"│ GFN2-xTB: \d+ succeeded +│", shown.stdout), shown.stdout
    jobs = invoke("jobs", "list", "--campaign", MARKUP_NAME, "--limit", "1")
    assert jobs.exit_code == 0 and "succeeded" in jobs.output
