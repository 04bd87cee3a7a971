"""`data export` always completes: repeated keys get suffixes, and nothing is half-written.

Two imports that both use the keys "0", "1", "2" export as 0, 1, 2, 0_2, 1_2,
2_2 (XSF file names likewise); re-importing the export stores nothing new; an
export that fails midway (a real "File too large" from RLIMIT_FSIZE, SIGINT,
SIGTERM) leaves the target as it was and no temporary behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.io.export import UniqueKeys, export_dataset
from interphase.io.importer import import_dataset
from interphase.records import LabelRecord, StructureRecord
from tests.db.cli_process import cli_env, one_line_error

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from make_paper_dataset import generate_paper_dataset

runner = CliRunner()
LEVEL = "wB97X-D3BJ_def2-TZVPD"


def water(shift: float, energy: float) -> dict[str, object]:
    return {
        "atomicNumbers": [8, 1, 1],
        "positions": [[shift, 0.0, 0.0], [shift, 0.757, 0.586], [shift, -0.757, 0.586]],
        "labels": {LEVEL: {"totalEnergy": energy}},
    }


def three_waters(path: Path, shift: float) -> Path:
    """A paper-json file with keys "0", "1", "2"."""
    entries = {str(i): water(shift + 10 * i, -76.0 - shift - i) for i in range(3)}
    path.write_text(json.dumps(entries))
    return path


def partials(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".partial-" in p.name)


def test_unique_keys() -> None:
    unique = UniqueKeys()
    assert [unique(k) for k in ["0", "1", "0", "0", "0_2", "1"]] == [
        "0", "1", "0_2", "0_3", "0_2_2", "1_2"
    ]  # fmt: skip
    folded = UniqueKeys(case_insensitive=True)
    assert [folded(k) for k in ["A", "a", "a_2"]] == ["A", "a_2", "a_2_2"]


def test_export_after_two_overlapping_imports(db_url: str, tmp_path: Path) -> None:
    first = three_waters(tmp_path / "first.json", 0.0)
    second = three_waters(tmp_path / "second.json", 100.0)
    with transaction(db_url) as session:  # a structure made here: its key is its id, "1"
        made = StructureRecord(numbers=np.array([1, 1]), positions_angstrom=np.eye(2, 3) * 0.74)
        made.labels[LEVEL] = LabelRecord(LEVEL, total_energy_hartree=-1.17)
        assert store_structures(session, [made], generator="test").ids == [1]
    import_dataset(first, url=db_url)
    import_dataset(second, url=db_url)

    out = tmp_path / "out.json"
    report = export_dataset(out, "paper-json", url=db_url)
    exported = json.loads(out.read_text())
    assert list(exported) == ["1", "0", "1_2", "2", "0_2", "1_3", "2_2"]
    assert report.n_written == 7 and report.left_out == []
    assert report.renamed == [("1", "1_2"), ("0", "0_2"), ("1", "1_3"), ("2", "2_2")]
    original = {**json.loads(first.read_text())}
    for key, entry in original.items():
        renamed = key if key != "1" else "1_2"
        assert exported[renamed]["labels"] == entry["labels"]
    assert exported["2_2"]["labels"][LEVEL]["totalEnergy"] == -76.0 - 100.0 - 2

    again = import_dataset(out, url=db_url)  # idempotent: the same structures
    assert (again.n_new_structures, again.n_duplicates) == (0, 7)
    assert export_dataset(tmp_path / "again.json", "paper-json", url=db_url).n_written == 7
    assert (tmp_path / "again.json").read_bytes() == out.read_bytes()

    xyz = tmp_path / "out.xyz"
    assert export_dataset(xyz, "extxyz", url=db_url).n_written == 7
    xsf = tmp_path / "xsf"
    assert export_dataset(xsf, "xsf", level=LEVEL, url=db_url).n_written == 7
    assert sorted(p.stem for p in xsf.iterdir()) == sorted(exported)
    assert partials(tmp_path) == []


def test_export_leaves_out_what_the_format_cannot_hold(db_url: str, tmp_path: Path) -> None:
    import_dataset(three_waters(tmp_path / "w.json", 0.0), url=db_url)
    with transaction(db_url) as session:
        bare = StructureRecord(numbers=np.array([3]), positions_angstrom=np.zeros((1, 3)))
        store_structures(session, [bare], generator="test")
    report = export_dataset(tmp_path / "out.json", "paper-json", url=db_url)
    assert report.n_written == 3
    assert report.left_out == [("4", "has no labels; paper-json needs at least one level")]
    report = export_dataset(tmp_path / "xsf", "xsf", level="PBE-D3", url=db_url)
    assert report.n_written == 0 and len(report.left_out) == 4
    assert "has no label at level 'PBE-D3'" in report.left_out[0][1]


def test_export_command_reports_renames_and_left_out(local_env: str, tmp_path: Path) -> None:
    for name, shift in (("a.json", 0.0), ("b.json", 50.0)):
        runner.invoke(app, ["data", "import", str(three_waters(tmp_path / name, shift))])
    with transaction(local_env) as session:
        bare = StructureRecord(numbers=np.array([3]), positions_angstrom=np.zeros((1, 3)))
        store_structures(session, [bare], generator="test")
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["data", "export", "--format", "paper-json", str(out)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "wrote 6 entries" in output
    assert "3 keys were already used in this export and got a suffix (0 → 0_2" in output
    assert "left out 1 structures that paper-json cannot hold: has no labels" in output


def test_bad_targets_are_one_line_and_create_nothing(local_env: str, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "out.json"
    line = one_line_error(
        runner.invoke(app, ["data", "export", "--format", "paper-json", str(missing)])
    )
    assert "directory" in line and "does not exist" in line
    assert not (tmp_path / "no").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    line = one_line_error(
        runner.invoke(app, ["data", "export", "--format", "xsf", "--level", LEVEL, str(full)])
    )
    assert "not an empty directory" in line
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    line = one_line_error(
        runner.invoke(app, ["data", "export", "--format", "paper-json", str(full)])
    )
    assert "is a directory" in line
    assert partials(tmp_path) == []


# ----------------------------------------------------------------- failing midway, for real


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.json"
    generate_paper_dataset(path, 3000, seed=11, workers=1)
    return path


@pytest.fixture
def big_database(db_url: str, big_file: Path) -> str:
    assert import_dataset(big_file, url=db_url).n_new_structures == 3000
    return db_url


def _limit_file_size() -> None:
    limit = 256 * 1024  # the export is ~20 MB; the database files stay below this
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def start_export(url: str, out: Path, fmt: str, *, limit: bool = False) -> subprocess.Popen[str]:
    args = ["data", "export", "--format", fmt, str(out)]
    if fmt == "xsf":
        args += ["--level", LEVEL]
    return subprocess.Popen(
        [sys.executable, "-m", "interphase.cli", *args],
        env=cli_env(url, out.parent / "data"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_file_size if limit else None,
    )


@pytest.mark.slow
def test_a_write_error_midway_leaves_the_old_file(big_database: str, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the write fail with EFBIG ("File too large") after 256 KiB."""
    out = tmp_path / "out.json"
    out.write_text('{"old": "export"}\n')
    process = start_export(big_database, out, "paper-json", limit=True)
    stdout, stderr = process.communicate(timeout=300)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    line = one_line_error(result)
    assert "File too large" in line and "was not changed" in line
    assert out.read_text() == '{"old": "export"}\n'
    assert partials(tmp_path) == []


def wait_for_partial(directory: Path, process: subprocess.Popen[str]) -> Path:
    """The export's temporary, once it holds data (observable progress), within a deadline."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [p for p in directory.iterdir() if ".partial-" in p.name]
        if found and ((found[0].is_dir() and any(found[0].iterdir())) or found[0].stat().st_size):
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("the export never started writing")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "stop"),
    [("paper-json", signal.SIGINT), ("paper-json", signal.SIGTERM), ("xsf", signal.SIGINT)],
)
def test_an_interrupted_export_leaves_nothing_half_written(
    big_database: str, tmp_path: Path, fmt: str, stop: signal.Signals
) -> None:
    out = tmp_path / ("out" if fmt == "xsf" else "out.json")
    if fmt != "xsf":
        out.write_text("previous\n")
    process = start_export(big_database, out, fmt)
    partial = wait_for_partial(tmp_path, process)
    os.kill(process.pid, signal.SIGSTOP)  # midway for sure: it cannot finish while stopped
    assert partial.exists(), "the export finished before it could be interrupted"
    os.kill(process.pid, stop)
    os.kill(process.pid, signal.SIGCONT)
    process.communicate(timeout=120)
    assert process.returncode != 0
    assert partials(tmp_path) == []
    if fmt == "xsf":
        assert not out.exists()
    else:
        assert out.read_text() == "previous\n"
