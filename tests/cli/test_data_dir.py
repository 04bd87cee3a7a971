"""Where the data lives does not depend on the working directory (issue 20, item 17).

With neither ``INTERPHASE_DATA_DIR`` nor ``INTERPHASE_DATABASE_URL`` set, the
data directory is the nearest ``.interphase`` at or above the working
directory, else the per-user ``$XDG_DATA_HOME/interphase``. Commands that only
read never create a database: they name the one they looked for and how to
point at another (so do commands that act on a job or campaign, which an empty
database cannot hold). ``status`` prints the database in use.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import invoke, lines, one_line_error
from tests.test_cli import paper_entries

#: Commands that only read, or act on a job or campaign that must exist already.
NEVER_CREATE = {
    "jobs-show": ["jobs", "show", "108"],
    "jobs-list": ["jobs", "list"],
    "jobs-run": ["jobs", "run"],
    "jobs-cancel": ["jobs", "cancel", "108"],
    "campaign-list": ["campaign", "list"],
    "campaign-show": ["campaign", "show", "demo"],
    "campaign-resume": ["campaign", "resume", "demo"],
    "campaign-schedules": ["campaign", "schedules"],
    "status": ["status"],
    "structures-list": ["structures", "list"],
    "data-export": ["data", "export", "--format", "extxyz", "{tmp}/out.extxyz"],
}


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A home with a per-user data directory, a project, and a directory elsewhere."""
    for name in ("INTERPHASE_DATA_DIR", "INTERPHASE_DATABASE_URL", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    project = tmp_path / "project"
    deep = project / "runs" / "today"
    elsewhere = tmp_path / "elsewhere"
    for folder in (home, deep, elsewhere):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.chdir(elsewhere)
    paper = tmp_path / "dataset.json"
    paper.write_text(json.dumps(paper_entries()))
    return {
        "home": home,
        "user": home / "share" / "interphase",
        "project": project,
        "deep": deep,
        "elsewhere": elsewhere,
        "paper": paper,
        "tmp": tmp_path,
    }


def databases(root: Path) -> list[Path]:
    return sorted(root.rglob("*.sqlite"))


@pytest.mark.parametrize("command", NEVER_CREATE.values(), ids=list(NEVER_CREATE))
def test_a_command_that_only_reads_never_creates_a_database(
    places: dict[str, Path], command: list[str]
) -> None:
    args = [part.replace("{tmp}", str(places["tmp"])) for part in command]
    line = one_line_error(invoke(*args))
    looked_for = places["user"] / "interphase.sqlite"
    assert f"no interphase database at {looked_for}" in line, line
    assert f"no .interphase directory in {places['elsewhere']} or above it" in line
    assert "INTERPHASE_DATA_DIR" in line and "INTERPHASE_DATABASE_URL" in line
    assert databases(places["tmp"]) == []
    assert not (places["elsewhere"] / ".interphase").exists()


def test_the_nearest_interphase_upwards_is_the_data_directory_wherever_you_are(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (places["project"] / ".interphase").mkdir()
    monkeypatch.chdir(places["project"])
    assert invoke("data", "import", str(places["paper"])).exit_code == 0
    database = places["project"] / ".interphase" / "interphase.sqlite"
    assert databases(places["tmp"]) == [database]

    monkeypatch.chdir(places["deep"])  # below the project: the same database
    status = invoke("status")
    assert status.exit_code == 0, status.output
    assert lines(status.output)[0] == (
        f"database sqlite:///{database} (the nearest .interphase directory at or above the "
        "working directory)"
    )
    assert "(imported / no campaign)" in status.output
    assert invoke("jobs", "show", "1").exit_code == 2  # no job 1, but the database is there
    assert "no labeling job with id 1" in invoke("jobs", "show", "1").output

    monkeypatch.chdir(places["elsewhere"])  # outside: the per-user directory, not created
    line = one_line_error(invoke("status"))
    assert str(places["user"] / "interphase.sqlite") in line
    assert databases(places["tmp"]) == [database]


def test_without_a_project_the_per_user_directory_is_used_from_anywhere(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("data", "import", str(places["paper"])).exit_code == 0
    database = places["user"] / "interphase.sqlite"
    assert databases(places["tmp"]) == [database]
    for where in (places["deep"], places["home"]):
        monkeypatch.chdir(where)
        status = invoke("status")
        assert status.exit_code == 0, status.output
        assert lines(status.output)[0].startswith(f"database sqlite:///{database} (the per-user")


def test_the_environment_still_chooses(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    (places["project"] / ".interphase").mkdir()
    monkeypatch.chdir(places["project"])
    chosen = places["tmp"] / "chosen"
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(chosen))
    assert invoke("data", "import", str(places["paper"])).exit_code == 0
    assert databases(places["tmp"]) == [chosen / "interphase.sqlite"]
    status = invoke("status")
    assert f"(the data directory INTERPHASE_DATA_DIR={chosen})" in lines(status.output)[0]

    url = f"sqlite:///{places['tmp'] / 'configured.sqlite'}"
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", url)
    assert invoke("db", "upgrade").exit_code == 0
    status = invoke("status")
    assert lines(status.output)[0] == f"database {url} (INTERPHASE_DATABASE_URL)"
