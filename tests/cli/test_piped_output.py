"""Output written to a pipe is never cut at 80 columns (issue 20, item 16).

Rich lays out for 80 columns when stdout is not a terminal; a campaign name cut
to ``demo-202612…`` is useless to ``campaign show``. These run the CLI in a
child process whose stdout is a pipe and whose environment has no ``COLUMNS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]
LONG_NAME = "demo-20261207-142233-" + "with-a-name-much-longer-than-any-terminal-" * 3


def run_piped(*args: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    env.update(
        INTERPHASE_DATABASE_URL=url,
        INTERPHASE_DATA_DIR=str(data_dir),
        PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT / "flows"), str(ROOT)]),
    )
    return subprocess.run(
        [sys.executable, "-m", "interphase.cli", *args],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,  # stdout is a pipe, not a terminal
        text=True,
        timeout=300,
    )


def test_campaign_list_and_show_print_whole_names_into_a_pipe(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    registered = run_piped(
        "campaign", "register", str(TINY), "--name", LONG_NAME, url=db_url, data_dir=data_dir
    )
    assert registered.returncode == 0, registered.stderr
    assert f"campaign {LONG_NAME!r} registered" in registered.stdout  # one line, uncut

    listed = run_piped("campaign", "list", url=db_url, data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert any(LONG_NAME in line for line in listed.stdout.splitlines()), listed.stdout
    assert "…" not in listed.stdout

    shown = run_piped("campaign", "show", LONG_NAME, url=db_url, data_dir=data_dir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"campaign {LONG_NAME}"
    assert f"campaign {LONG_NAME!r}: created" in shown.stdout.splitlines()
