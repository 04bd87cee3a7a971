"""Tests of interphase.io.xsf and the format registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.units import Hartree

from interphase.io.errors import DatasetFormatError
from interphase.io.formats import (
    FORMATS,
    LevelRequiredError,
    UnknownFormatError,
    guess_format,
    read_records,
    write_records,
)
from interphase.io.xsf import format_xsf, iter_xsf, parse_xsf, write_xsf
from interphase.records import LabelRecord, StructureRecord

LEVEL = "PBE-D3"

AENET_CRYSTAL = """# total energy = -408.1234567 eV

CRYSTAL
PRIMVEC
  3.49 0.0 0.0
  0.0 3.49 0.0
  0.0 0.0 3.49
PRIMCOORD
  2 1
Li   0.0 0.0 0.0   0.5 0.0 -0.25
Li   1.745 1.745 1.745   -0.5 0.0 0.25
"""

AENET_MOLECULE = """# total energy = -2078.5 eV
ATOMS
O 0.0 0.0 0.117
H 0.0 0.757 -0.469
1 0.0 -0.757 -0.469
"""


def test_reads_aenet_crystal_with_units_and_force_sign() -> None:
    record = parse_xsf(AENET_CRYSTAL, LEVEL, key="li2")
    assert record.key == "li2" and record.pbc == (True, True, True)
    assert record.cell_angstrom is not None and record.cell_angstrom[1, 1] == 3.49
    label = record.labels[LEVEL]
    # ase.units (CODATA 2014): 1 Hartree = 27.211386024 eV.
    assert label.total_energy_hartree == -408.1234567 / Hartree
    assert label.total_energy_hartree == pytest.approx(-14.9982605, abs=1e-7)
    gradient = label.gradient_hartree_per_angstrom
    assert gradient is not None
    # Force +0.5 eV/Å along x means the energy decreases along x: gradient < 0.
    assert gradient[0, 0] == pytest.approx(-0.5 / Hartree, rel=1e-15)
    assert gradient[0, 0] < 0 and gradient[1, 0] > 0
    assert gradient[0, 2] == pytest.approx(0.25 / Hartree, rel=1e-15)


def test_reads_molecule_without_forces() -> None:
    record = parse_xsf(AENET_MOLECULE, LEVEL, key="w")
    assert record.numbers.tolist() == [8, 1, 1]  # atomic number accepted for H
    assert record.pbc == (False, False, False) and record.cell_angstrom is None
    assert record.labels[LEVEL].gradient_hartree_per_angstrom is None
    assert record.labels[LEVEL].total_energy_hartree == pytest.approx(-76.383467, abs=1e-6)
    assert (record.charge, record.multiplicity) == (0, 1)
    radical = parse_xsf("ATOMS\nLi 0 0 0\n", LEVEL)
    assert radical.multiplicity == 2 and radical.labels[LEVEL].total_energy_hartree is None


def test_writes_ev_and_forces() -> None:
    record = StructureRecord(
        numbers=np.array([1, 1]),
        positions_angstrom=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]),
        labels={LEVEL: LabelRecord(LEVEL, -1.0, None, np.array([[0, 0, -0.1], [0, 0, 0.1]]))},
    )
    text = format_xsf(record, LEVEL)
    assert text.splitlines()[0] == f"# total energy = {-Hartree!r} eV"
    assert "ATOMS" in text and "PRIMVEC" not in text
    h2 = text.splitlines()[-1].split()
    assert h2[0] == "H" and float(h2[3]) == 0.74
    assert float(h2[6]) == pytest.approx(-0.1 * Hartree, rel=1e-15)  # force = -gradient


def test_round_trip_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    cell = np.eye(3) * 6.98 + rng.normal(scale=0.02, size=(3, 3))
    records = [
        StructureRecord(
            numbers=np.array([3] * 4),
            positions_angstrom=rng.random((4, 3)) * 6.0,
            cell_angstrom=cell,
            pbc=(True, True, True),
            labels={LEVEL: LabelRecord(LEVEL, -30.123456789, None, rng.normal(size=(4, 3)))},
            key=str(key),
        )
        for key in (10, 2, 1)
    ]
    records.append(
        StructureRecord(
            numbers=np.array([6, 8]),
            positions_angstrom=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.128]]),
            labels={LEVEL: LabelRecord(LEVEL, -113.2)},  # energy only: no forces written
            key="co/1",
        )
    )
    assert write_xsf(records, tmp_path / "out", LEVEL) == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "1.xsf",
        "10.xsf",
        "2.xsf",
        "co_1.xsf",
    ]
    back = list(iter_xsf(tmp_path / "out", LEVEL))
    assert [r.key for r in back] == ["1", "2", "10", "co_1"]  # numeric order
    by_key = {r.key: r for r in back}
    for record in records[:3]:
        read = by_key[record.key]
        assert np.array_equal(read.positions_angstrom, record.positions_angstrom)
        assert read.cell_angstrom is not None and np.array_equal(read.cell_angstrom, cell)
        a, b = record.labels[LEVEL], read.labels[LEVEL]
        assert a.total_energy_hartree is not None
        assert a.gradient_hartree_per_angstrom is not None
        assert b.gradient_hartree_per_angstrom is not None
        assert b.total_energy_hartree == pytest.approx(a.total_energy_hartree, rel=1e-15)
        np.testing.assert_allclose(
            b.gradient_hartree_per_angstrom, a.gradient_hartree_per_angstrom, rtol=1e-15
        )
    co = by_key["co_1"]
    assert co.labels[LEVEL].gradient_hartree_per_angstrom is None
    assert co.labels[LEVEL].total_energy_hartree == pytest.approx(-113.2, rel=1e-15)


def test_iter_xsf_accepts_file_list(tmp_path: Path) -> None:
    (tmp_path / "a.xsf").write_text(AENET_MOLECULE)
    (tmp_path / "b.xsf").write_text(AENET_CRYSTAL)
    keys = [r.key for r in iter_xsf([tmp_path / "b.xsf", str(tmp_path / "a.xsf")], LEVEL)]
    assert keys == ["b", "a"]
    assert [r.key for r in iter_xsf(tmp_path / "a.xsf", LEVEL)] == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# total energy = -1.0 Ry\nATOMS\nH 0 0 0\n", "unit must be eV"),
        ("# total energy = abc eV\nATOMS\nH 0 0 0\n", "is not a number"),
        ("ATOMS\nH 0 0\n", "line 2: atom line needs"),
        ("ATOMS\nQq 0 0 0\n", "line 2: unknown element 'Qq'"),
        ("ATOMS\nH 0 0 0\nH 0 0 1 0 0 0\n", "some atom lines have forces"),
        ("CRYSTAL\nPRIMCOORD\n1 1\nLi 0 0 0\n", "without PRIMVEC"),
        ("CRYSTAL\nPRIMVEC\n1 0 0\n0 1 0\n", "unexpected end of file"),
        ("CRYSTAL\nPRIMVEC\n1 0 0\n0 1 0\n0 0 1\nPRIMCOORD\nx 1\n", "expected the atom count"),
        ("ANIMSTEPS 2\n", "not supported"),
        ("# comment only\n", "no atoms found"),
        ("ATOMS\nH 0 0 0 x 0 0\n", "expected numbers"),
    ],
)
def test_bad_files_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DatasetFormatError, match=message) as info:
        parse_xsf(text, LEVEL, key="f7")
    assert info.value.key == "f7" and str(info.value).startswith("entry 'f7'")


def test_writer_errors(tmp_path: Path) -> None:
    record = parse_xsf(AENET_MOLECULE, LEVEL, key="w")
    with pytest.raises(DatasetFormatError, match="no label at level 'wB97X'"):
        write_xsf([record], tmp_path, "wB97X")
    with pytest.raises(DatasetFormatError, match="already used"):
        write_xsf([record, record], tmp_path, LEVEL)
    record.pbc = (False, True, True)
    record.cell_angstrom = np.eye(3)
    with pytest.raises(DatasetFormatError, match="cannot hold pbc"):
        format_xsf(record, LEVEL)


def test_format_registry(tmp_path: Path) -> None:
    assert set(FORMATS) == {"paper-json", "extxyz", "xsf"}
    assert guess_format("a/b.json") == "paper-json"
    assert guess_format("b.XYZ") == "extxyz" and guess_format("b.extxyz") == "extxyz"
    assert guess_format("c.xsf") == "xsf" and guess_format(tmp_path) == "xsf"
    with pytest.raises(UnknownFormatError, match=r"'data\.h5'"):
        guess_format("data.h5")
    with pytest.raises(UnknownFormatError, match="known"):
        write_records([], tmp_path / "x", "hdf5")
    record = parse_xsf(AENET_CRYSTAL, LEVEL, key="li2")
    with pytest.raises(LevelRequiredError):
        write_records([record], tmp_path / "xsf", "xsf")
    assert write_records([record], tmp_path / "xsf", "xsf", level=LEVEL) == 1
    (back,) = read_records(tmp_path / "xsf", level=LEVEL)
    assert back.key == "li2"
    for fmt, name in (("extxyz", "r.xyz"), ("paper-json", "r.json")):
        assert write_records([record], tmp_path / name, fmt) == 1
        (again,) = read_records(tmp_path / name)
        assert np.array_equal(again.positions_angstrom, record.positions_angstrom)
        assert again.labels[LEVEL].total_energy_hartree == record.labels[LEVEL].total_energy_hartree
