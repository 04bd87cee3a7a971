"""`--skip-invalid` skips every problem of one entry, in every format; file faults still stop.

Each file mixes valid entries with one entry per kind of problem. With
``skip_invalid`` the valid ones are stored and every other one is listed with
its reason; without it the import stops at the first and stores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Structure
from interphase.db.session import transaction
from interphase.io.importer import DatasetImportError, import_dataset
from interphase.io.xsf import format_xsf
from interphase.records import LabelRecord, StructureRecord

runner = CliRunner()
WATER = [[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]]


def water_positions(shift: float) -> list[list[float]]:
    return [[x + shift, y, z] for x, y, z in WATER]


def n_structures(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(Structure)) or 0)


def source_keys(url: str) -> list[str | None]:
    with transaction(url) as session:
        return list(session.scalars(select(Structure.source_key).order_by(Structure.id)))


# --------------------------------------------------------------------------- paper-json


def water_entry(shift: float, **changes: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "atomicNumbers": [8, 1, 1],
        "elements": ["O", "H", "H"],
        "positions": water_positions(shift),
        "charge": 0,
        "multiplicity": 1,
        "labels": {
            "L": {"totalEnergy": -76.4, "gradient": [[0.0, 0.0, 0.01], [0.0, 0.01, 0.0], [0, 0, 0]]}
        },
    }
    entry.update(changes)
    return entry


PAPER_PROBLEMS = {
    "no-positions": "missing required field 'positions'",
    "short-gradient": "gradient'] has shape (2, 3), expected (3, 3)",
    "unknown-symbol": "are not element symbols",
    "charge-abc": "charge must be an integer",
    "multiplicity": "multiplicity",
    "nan": "NaN and Infinity are not JSON numbers",
    "scalar": "must be a JSON object",
    "too-close": "close",
}


def paper_file(path: Path) -> Path:
    no_positions = water_entry(3.0)
    del no_positions["positions"]
    unknown = water_entry(5.0, elements=["O", "H", "Xx"])
    del unknown["atomicNumbers"]
    nan = water_entry(8.0)
    nan["positions"] = [[float("nan"), 0.0, 0.0], *WATER[1:]]
    entries: dict[str, object] = {
        "v1": water_entry(0.0),
        "no-positions": no_positions,
        "short-gradient": water_entry(4.0, labels={"L": {"gradient": [[0, 0, 0], [0, 0, 0]]}}),
        "unknown-symbol": unknown,
        "charge-abc": water_entry(6.0, charge="abc"),
        "multiplicity": water_entry(7.0, multiplicity=2),
        "nan": nan,
        "scalar": 5,
        "too-close": water_entry(9.0, positions=[[9, 0, 0], [9, 0, 0.1], [9, 0.75, 0.58]]),
        "v2": water_entry(10.0),
    }
    path.write_text(json.dumps(entries, indent=1))  # json writes NaN as the bare word NaN
    return path


# --------------------------------------------------------------------------- extxyz


def frame(key: str, shift: float, comment: str = "", lines: list[str] | None = None) -> str:
    atoms = lines or [f"{s} {x + shift} {y} {z}" for s, (x, y, z) in zip("OHH", WATER, strict=True)]
    header = f"Properties=species:S:1:pos:R:3 key={key} {comment}".strip()
    return "\n".join([str(len(atoms)), header, *atoms]) + "\n"


LEVELS = 'levels="_JSON [\\"L\\"]"'
EXTXYZ_PROBLEMS = {
    "energy-abc": "L/total_energy_hartree must be a number, got 'abc'",
    "charge-abc": "charge must be an integer, got 'abc'",
    "unknown-symbol": "unknown element symbol 'Xx'",
    "short-gradient": "has 6 values, expected shape (3, 3)",
    "frame 5": "line 27 is not UTF-8 text (byte 0xe9 at column 40",
    "nan": "not finite",
    "multiplicity": "multiplicity",
}


def extxyz_file(path: Path) -> Path:
    gradient_lines = [
        f"{s} {x + 4} {y} {z} 0.1 0.2" for s, (x, y, z) in zip("OHH", WATER, strict=True)
    ]
    frames = [
        frame("v1", 0.0),
        frame("energy-abc", 1.0, f"{LEVELS} L/total_energy_hartree=abc"),
        frame("charge-abc", 2.0, "charge=abc"),
        frame("unknown-symbol", 3.0, lines=["O 3 0 0", "H 3 0.757 0.586", "Xx 3 -0.757 0.586"]),
        frame("short-gradient", 4.0, LEVELS, gradient_lines).replace(
            "pos:R:3", "pos:R:3:L/gradient_hartree_per_angstrom:R:2"
        ),
        "@LATIN1@",
        frame("nan", 6.0, lines=["O nan 0 0", "H 6 0.757 0.586", "H 6 -0.757 0.586"]),
        frame("multiplicity", 7.0, "multiplicity=2"),
        frame("v2", 8.0),
    ]
    text = "".join(frames).encode()
    latin1 = frame("w5", 5.0).replace("key=w5", "note=café").encode("latin-1")
    path.write_bytes(text.replace(b"@LATIN1@", latin1))
    return path


# --------------------------------------------------------------------------- xsf


def xsf_text(shift: float) -> str:
    record = StructureRecord(
        numbers=np.array([8, 1, 1]),
        positions_angstrom=np.array(water_positions(shift)),
        labels={"L": LabelRecord("L", -76.4, gradient_hartree_per_angstrom=np.zeros((3, 3)))},
    )
    return format_xsf(record, "L")


XSF_PROBLEMS = {
    "binary": "is not a text XSF file",
    "unknown-element": "unknown element 'Xx'",
    "energy-abc": "total energy 'abc' is not a number",
    "truncated": "unexpected end of file",
    "nan": "not finite",
}


def xsf_directory(path: Path) -> Path:
    path.mkdir()
    (path / "v1.xsf").write_text(xsf_text(0.0))
    (path / "binary.xsf").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)))
    (path / "unknown-element.xsf").write_text(xsf_text(2.0).replace("\nH ", "\nXx ", 1))
    (path / "energy-abc.xsf").write_text(
        xsf_text(3.0).replace(xsf_text(3.0).splitlines()[0], "# total energy = abc eV")
    )
    crystal = "CRYSTAL\nPRIMVEC\n5 0 0\n0 5 0\n0 0 5\nPRIMCOORD\n3 1\nLi 0 0 0\nLi 2.5 2.5 2.5\n"
    (path / "truncated.xsf").write_text(crystal)
    (path / "nan.xsf").write_text("ATOMS\nO nan 0 0\nH 0 0.757 0.586\nH 0 -0.757 0.586\n")
    (path / "v2.xsf").write_text(xsf_text(8.0))
    return path


CASES = {
    "paper-json": (paper_file, "data.json", PAPER_PROBLEMS, None),
    "extxyz": (extxyz_file, "data.xyz", EXTXYZ_PROBLEMS, None),
    "xsf": (xsf_directory, "xsf", XSF_PROBLEMS, "L"),
}


@pytest.mark.parametrize("fmt", list(CASES))
def test_every_entry_problem_is_skipped_with_its_reason(
    fmt: str, db_url: str, tmp_path: Path
) -> None:
    make, name, problems, level = CASES[fmt]
    path = make(tmp_path / name)
    with pytest.raises(DatasetImportError, match=r"Nothing was imported.*--skip-invalid"):
        import_dataset(path, level=level, url=db_url)
    assert n_structures(db_url) == 0

    report = import_dataset(path, level=level, url=db_url, skip_invalid=True)
    skipped = dict(report.skipped)
    assert sorted(skipped) == sorted(problems), report.skipped
    for entry, reason in problems.items():
        assert reason in skipped[entry], (entry, skipped[entry])
    assert report.n_new_structures == 2 and report.n_read == len(problems) + 2
    assert sorted(source_keys(db_url)) == ["v1", "v2"]


def test_skipped_entries_are_listed_by_the_command(local_env: str, tmp_path: Path) -> None:
    path = paper_file(tmp_path / "data.json")
    refused = runner.invoke(app, ["data", "import", str(path)], catch_exceptions=False)
    assert refused.exit_code == 2
    assert "entry 'no-positions'" in refused.output and "--skip-invalid" in refused.output
    result = runner.invoke(
        app, ["data", "import", "--skip-invalid", str(path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "2 new structures" in result.output and f"{len(PAPER_PROBLEMS)} skipped" in result.output
    for key in PAPER_PROBLEMS:
        assert key in result.output


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("truncated.json", b'{"v1": {"positions": [[0, 0, 0]], "labels": {"L"', "truncated"),
        ("not-json.json", b"atomicNumbers,positions\n1,0 0 0\n", "must be a JSON object"),
        ("extra.json", b'{"a": {"x": 1}} trailing', "unexpected data after the top-level"),
        ("binary.xyz", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00", "this does not look like an extxyz"),
        ("count.xyz", b"3\n\nO 0 0 0\nH 0 0 1\nH 0 1 0\nthree\n\n", "expected an atom count"),
        ("negative.xyz", b"-3\n\nO 0 0 0\n", "the atom count -3 is negative"),
        ("short.xyz", b"3\n\nO 0 0 0\nH 0 0 1\n", "is truncated"),
    ],
)
def test_faults_of_the_whole_file_still_stop_the_import(
    db_url: str, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetImportError, match=message) as info:
        import_dataset(path, url=db_url, skip_invalid=True)
    assert "--skip-invalid" not in str(info.value)  # skipping cannot help here
    assert n_structures(db_url) == 0


def test_an_xsf_directory_without_xsf_files_is_refused(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetImportError, match=r"holds no \.xsf files"):
        import_dataset(tmp_path / "empty", fmt="xsf", level="L", url=db_url)
