"""``interphase calc`` with every installed engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from interphase.cli import app
from interphase.labeling.engines import get_engine

WATER_XYZ = "3\n\nO 0 0 0\nH 0 0.757 0.586\nH 0 -0.757 0.586\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("engine", "args"),
    [
        ("tblite", ["--level", "GFN2-xTB"]),
        ("psi4", ["--engine", "psi4", "--method", "HF", "--basis", "sto-3g"]),
        ("pyscf", ["--engine", "pyscf", "--method", "HF", "--basis", "sto-3g"]),
        ("gpaw", ["--level", "PBE-D3"]),
    ],
)
def test_calc_runs_every_engine(engine: str, args: list[str], tmp_path: Path) -> None:
    if not (availability := get_engine(engine).available()).ok:
        pytest.skip(f"{engine} not installed: {availability.reason}")
    if engine == "gpaw":
        atoms = bulk("Li", "bcc", a=3.44, cubic=True)
        atoms.positions[1] += 0.05
        path = tmp_path / "li.extxyz"
        write(path, atoms)
    else:
        path = tmp_path / "water.xyz"
        path.write_text(WATER_XYZ)
    result = CliRunner().invoke(app, ["calc", str(path), *args])
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)
    assert output["provenance"]["engine"] == engine
    assert len(output["gradient_hartree_per_angstrom"]) == (2 if engine == "gpaw" else 3)


def test_calc_reports_an_engine_failure_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "water.xyz"
    path.write_text(WATER_XYZ)
    result = CliRunner().invoke(
        app, ["calc", str(path), "--engine", "psi4-nope", "--method", "HF", "--basis", "sto-3g"]
    )
    assert result.exit_code == 2 and "unknown engine" in result.output
