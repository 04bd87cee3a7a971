"""The Makefile and README say where the demo's data goes and how to show it (item 18)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_makefile_names_the_data_directory_the_demo_writes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "./data" not in makefile
    comment = makefile[makefile.index("# The demo is a campaign") : makefile.index("DEMO_STAMP :=")]
    recipe = makefile[makefile.index("\ndemo:") :].split("\n\n")[0]
    # The demo creates the checkout's ./.interphase, which every later command finds.
    assert "./.interphase" in comment and "mkdir -p .interphase" in recipe


def test_the_readme_shows_campaigns_by_a_name_that_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    # `make demo` names each campaign demo-<date>: plain `demo` names none.
    assert not re.search(r"campaign (show|resume|stop|export) demo\b(?!-)", readme)
    assert "interphase campaign list" in readme


def test_the_readme_documents_the_default_data_directory() -> None:
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `INTERPHASE_DATA_DIR`"))
    assert ".interphase" in row and "~/.local/share/interphase" in row
