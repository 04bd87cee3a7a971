"""The `interphase` command, end to end on a real database and real engines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Label, Structure
from interphase.db.session import transaction
from interphase.io.paper_json import iter_paper_json

runner = CliRunner()

WATER_XYZ = """3
water
O 0.000000 0.000000 0.000000
H 0.000000 0.757000 0.586000
H 0.000000 -0.757000 0.586000
"""


def paper_entries() -> dict[str, dict]:
    """Two molecular entries (one with xtbCharges) and one periodic Li cell."""
    return {
        "10": {
            "atomicNumbers": [8, 1, 1],
            "elements": ["O", "H", "H"],
            "positions": [[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]],
            "charge": 0,
            "multiplicity": 1,
            "labels": {
                "wB97X-D3BJ_def2-TZVPD": {
                    "totalEnergy": -76.4234567891234,
                    "atomizationEnergy": -0.3512345678901,
                    "gradient": [
                        [0.0, 0.0, -0.0123],
                        [0.0, 0.0101, 0.00615],
                        [0.0, -0.0101, 0.00615],
                    ],
                    "dipoleMoment": [0.0, 0.0, 0.4123],
                    "xtbCharges": [-0.56, 0.28, 0.28],
                }
            },
        },
        "11": {
            "atomicNumbers": [3],
            "elements": ["Li"],
            "positions": [[0.0, 0.0, 0.0]],
            "charge": 1,
            "multiplicity": 1,
            "labels": {"wB97X-D3BJ_def2-TZVPD": {"totalEnergy": -7.28}},
        },
        "12": {
            "atomicNumbers": [3, 3],
            "elements": ["Li", "Li"],
            "positions": [[0.0, 0.0, 0.0], [1.745, 1.745, 1.745]],
            "charge": 0,
            "multiplicity": 1,
            "lattice": [[3.49, 0.0, 0.0], [0.0, 3.49, 0.0], [0.0, 0.0, 3.49]],
            "labels": {
                "PBE-D3": {
                    "totalEnergy": -14.9876543210987,
                    "atomizationEnergy": -0.0712,
                    "gradient": [[1e-4, -2e-4, 3e-4], [-1e-4, 2e-4, -3e-4]],
                }
            },
        },
    }


@pytest.fixture
def paper_file(tmp_path: Path) -> Path:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(paper_entries()))
    return path


def counts(url: str) -> tuple[int, int]:
    with transaction(url) as session:
        return session.query(Structure).count(), session.query(Label).count()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def text(result: Result) -> str:
    """Output with line wrapping undone (rich wraps at the terminal width)."""
    return " ".join(result.output.split())


def test_import_export_round_trip(local_env: str, paper_file: Path, tmp_path: Path) -> None:
    result = invoke("data", "import", str(paper_file))
    assert result.exit_code == 0, result.output
    assert "3 new structures" in text(result)
    # xtbCharges became a GFN2-xTB label: 2 hybrid + 1 xTB + 1 PBE.
    assert counts(local_env) == (3, 4)
    again = invoke("data", "import", str(paper_file))
    assert "0 new structures, 3 already present" in text(again)
    assert counts(local_env) == (3, 4)

    out = tmp_path / "out.json"
    result = invoke("data", "export", "--format", "paper-json", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == paper_entries()  # same keys, values, units, no extras


def test_bad_file_is_refused_and_database_unchanged(
    local_env: str, paper_file: Path, tmp_path: Path
) -> None:
    invoke("data", "import", str(paper_file))
    entries = paper_entries()
    good = entries.pop("12")
    entries = {"20": good | {"positions": [[0.0, 0.0, 0.0], [0.2, 0.0, 0.0]]}, "21": entries["10"]}
    entries["21"] = entries["21"] | {
        "positions": [[0.0, 0.0, 0.0], [0.0, 0.75, 0.58], [0.0, -0.76, 0.6]]
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(entries))
    before = counts(local_env)
    result = runner.invoke(app, ["data", "import", str(bad)])
    assert result.exit_code == 2
    assert "'20'" in text(result) and "close" in text(result).lower()
    assert counts(local_env) == before  # nothing from the bad file

    result = runner.invoke(app, ["data", "import", "--skip-invalid", str(bad)])
    assert result.exit_code == 0, result.output
    assert "1 new structures" in text(result) and "1 skipped" in text(result)
    assert counts(local_env)[0] == before[0] + 1


def test_malformed_json_names_the_problem(local_env: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"1": {"atomicNumbers": [1, 1], "positions": [[0, 0, 0], [0, 0, 0.74]]')
    result = runner.invoke(app, ["data", "import", str(path)])
    assert result.exit_code == 2
    assert "error" in text(result).lower()
    assert counts(local_env) == (0, 0)


def test_missing_schema_gives_a_helpful_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.sqlite'}")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "interphase db upgrade" in text(result)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0 and "labels by level of theory" in text(result)


def test_calc_gfn2_xtb_on_water(tmp_path: Path) -> None:
    path = tmp_path / "water.xyz"
    path.write_text(WATER_XYZ)
    result = runner.invoke(app, ["calc", str(path), "--level", "GFN2-xTB"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["energy_hartree"] == pytest.approx(-5.0703698, abs=1e-6)
    gradient = np.array(data["gradient_hartree_per_angstrom"])
    assert gradient.shape == (3, 3) and abs(gradient.sum(axis=0)).max() < 1e-8
    assert sum(data["charges"]) == pytest.approx(0.0, abs=1e-8)
    same = runner.invoke(app, ["calc", str(path), "--engine", "tblite", "--method", "GFN2-xTB"])
    assert json.loads(same.stdout)["energy_hartree"] == data["energy_hartree"]


def test_calc_rejects_bad_requests(tmp_path: Path) -> None:
    path = tmp_path / "water.xyz"
    path.write_text(WATER_XYZ)
    result = runner.invoke(app, ["calc", str(path), "--level", "MP2"])
    assert result.exit_code == 2 and "unknown level" in text(result)
    result = runner.invoke(app, ["calc", str(tmp_path / "missing.xyz"), "--level", "GFN2-xTB"])
    assert result.exit_code == 2 and "does not exist" in text(result)
    result = runner.invoke(app, ["calc", str(path), "--level", "GFN2-xTB", "--multiplicity", "2"])
    assert result.exit_code == 2 and "multiplicity" in text(result).lower()


def test_reader_is_lazy(paper_file: Path) -> None:
    first = next(iter(iter_paper_json(paper_file)))
    assert first.key == "10"


def one_line_error(result: Result) -> str:
    """The only line a failed command printed (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def water_frame(comment: str) -> str:
    atoms = "O 0 0 0\nH 0 0.757 0.586\nH 0 -0.757 0.586\n"
    return f"3\nProperties=species:S:1:pos:R:3 {comment}\n{atoms}"


BAD_EXTXYZ = {
    "energy-abc": (
        water_frame('levels="_JSON [\\"L\\"]" L/total_energy_hartree=abc').encode(),
        ["frame 0 (line 1)", "L/total_energy_hartree must be a number, got 'abc'", "--skip"],
    ),
    "charge-abc": (
        water_frame("charge=abc").encode(),
        ["frame 0 (line 1)", "charge must be an integer, got 'abc'"],
    ),
    "count-minus-3": (b"-3\n\nO 0 0 0\n", ["frame 0 (line 1)", "atom count -3 is negative"]),
    "binary": (bytes(range(256)) * 4, ["line 1 is not text", "does not look like an extxyz"]),
    "latin-1": (
        water_frame("note=caf\xe9").encode("latin-1"),
        ["line 2 is not UTF-8 text (byte 0xe9", "save the file as UTF-8"],
    ),
}


@pytest.mark.parametrize(("content", "expected"), BAD_EXTXYZ.values(), ids=list(BAD_EXTXYZ))
def test_bad_extxyz_is_one_line_and_changes_nothing(
    local_env: str, paper_file: Path, tmp_path: Path, content: bytes, expected: list[str]
) -> None:
    invoke("data", "import", str(paper_file))
    before = counts(local_env)
    path = tmp_path / "bad.xyz"
    path.write_bytes(content)
    line = one_line_error(runner.invoke(app, ["data", "import", str(path)]))
    assert str(path) in line
    for part in expected:
        assert part in line, line
    assert counts(local_env) == before


def test_binary_xsf_alone_and_in_a_directory(local_env: str, tmp_path: Path) -> None:
    binary = bytes(range(256)) * 2
    single = tmp_path / "alone.xsf"
    single.write_bytes(binary)
    line = one_line_error(runner.invoke(app, ["data", "import", str(single), "--level", "L"]))
    assert "alone.xsf is not a text XSF file" in line
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.xsf").write_text("ATOMS\nH 0 0 0\nH 0 0 0.74\n")
    (folder / "bad.xsf").write_bytes(binary)
    line = one_line_error(runner.invoke(app, ["data", "import", str(folder), "--level", "L"]))
    assert "bad.xsf is not a text XSF file" in line and "--skip-invalid" in line
    assert counts(local_env) == (0, 0)
    result = invoke("data", "import", str(folder), "--level", "L", "--skip-invalid")
    assert result.exit_code == 0 and "1 new structures" in text(result) and "bad" in text(result)


def test_malformed_json_is_reported_at_the_entry_with_its_place_in_the_file(
    local_env: str, tmp_path: Path
) -> None:
    entries = {str(i): paper_entries()["10"] | {"positions": [[i, 0, 0], [i, 0.757, 0.586],
               [i, -0.757, 0.586]]} for i in range(40)}  # fmt: skip
    body = json.dumps(entries, indent=1)
    lines = body.splitlines()
    # entry '30': its first position becomes [NaN, 0, 0] (json writes NaN, which is not JSON)
    start = lines.index(' "30": {')
    at = next(i for i in range(start, len(lines)) if lines[i].strip() == "30,")
    lines[at] = lines[at].replace("30,", "NaN,")
    path = tmp_path / "nan.json"
    path.write_text("\n".join(lines))
    line = one_line_error(runner.invoke(app, ["data", "import", str(path)]))
    column = lines[at].index("NaN") + 1
    offset = len("\n".join(lines[:at])) + 1 + column - 1
    assert "entry '30': malformed JSON" in line, line
    assert f"at line {at + 1}, column {column}, byte {offset}" in line, line
    assert "after entry" not in line
    assert counts(local_env) == (0, 0)
    result = invoke("data", "import", "--skip-invalid", str(path))
    assert "39 new structures" in text(result) and "1 skipped" in text(result)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_text(""), "is empty"),
        (lambda p: p.write_text("3\nwater\nO 0 0 0\n"), "cannot read structure file"),
        (lambda p: p.mkdir(), "is a directory; give one structure file"),
        (lambda p: p.write_text("2\n\nXx 0 0 0\nH 0 0 1\n"), "names an unknown element 'Xx'"),
    ],
    ids=["empty", "truncated", "directory", "unknown-symbol"],
)
def test_calc_on_unreadable_structure_files(tmp_path: Path, make, expected: str) -> None:
    path = tmp_path / "input.xyz"
    make(path)
    line = one_line_error(runner.invoke(app, ["calc", str(path), "--level", "GFN2-xTB"]))
    assert str(path) in line and expected in line, line


def test_model_eval_of_a_run_that_does_not_exist(local_env: str) -> None:
    line = one_line_error(runner.invoke(app, ["model", "eval", "999"]))
    assert "there is no training run 999" in line and "artifact" not in line
