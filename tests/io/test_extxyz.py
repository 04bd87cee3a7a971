"""Tests of interphase.io.extxyz and interphase.io.extxyz_write."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms

from interphase.io.errors import DatasetFormatError
from interphase.io.extxyz import iter_extxyz
from interphase.io.extxyz_write import format_frame, write_extxyz
from interphase.io.paper_json import iter_paper_json
from interphase.records import XTB_LEVEL, LabelRecord, StructureRecord
from tests.io.records_equal import assert_same_records

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_paper_dataset import generate_paper_dataset

WB97X = "wB97X-D3BJ_def2-TZVPD"


def labelled_molecule(rng: np.random.Generator) -> StructureRecord:
    return StructureRecord(
        numbers=np.array([8, 1, 1]),
        positions_angstrom=rng.normal(size=(3, 3)),
        charge=-1,
        multiplicity=2,
        labels={
            WB97X: LabelRecord(
                WB97X,
                float(rng.normal()) - 76.0,
                float(rng.normal()),
                rng.normal(size=(3, 3)) * 1e-3,
                rng.normal(size=3),
            ),
            "PBE-D3": LabelRecord("PBE-D3", total_energy_hartree=-76.25),
            XTB_LEVEL: LabelRecord(
                XTB_LEVEL, charges_e=rng.normal(size=3), provenance={"paper_json_parent": WB97X}
            ),
            "empty": LabelRecord("empty"),
        },
        key="123",  # must stay a string, not become int 123
    )


def periodic_li(rng: np.random.Generator) -> StructureRecord:
    cell = np.eye(3) * 3.49 + rng.normal(scale=0.01, size=(3, 3))
    return StructureRecord(
        numbers=np.array([3, 3]),
        positions_angstrom=np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]) @ cell,
        cell_angstrom=cell,
        pbc=(True, True, True),
        labels={"PBE-D3": LabelRecord("PBE-D3", -14.9, None, rng.normal(size=(2, 3)))},
        key="T",  # would be parsed as boolean True without JSON encoding
    )


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    slab = periodic_li(rng)
    slab.pbc = (True, True, False)
    slab.key = None
    records = [labelled_molecule(rng), periodic_li(rng), slab]
    path = tmp_path / "out.xyz"
    assert write_extxyz(records, path) == 3
    back = list(iter_extxyz(path))
    assert len(back) == 3
    for a, b in zip(records, back, strict=True):
        assert_same_records(a, b)
    assert back[0].key == "123" and isinstance(back[0].key, str)
    assert back[1].key == "T"
    assert back[2].key is None and back[2].pbc == (True, True, False)
    empty = back[0].labels["empty"]
    assert empty.total_energy_hartree is None and empty.gradient_hartree_per_angstrom is None
    assert back[0].labels["PBE-D3"].gradient_hartree_per_angstrom is None
    assert back[0].labels[XTB_LEVEL].provenance == {"paper_json_parent": WB97X}


def test_generated_paper_dataset_round_trips(tmp_path: Path) -> None:
    generate_paper_dataset(tmp_path / "g.json", 60, seed=4, periodic_fraction=0.2, workers=1)
    records = list(iter_paper_json(tmp_path / "g.json"))
    buffer = io.StringIO()
    write_extxyz(records, buffer)
    buffer.seek(0)
    for a, b in zip(records, iter_extxyz(buffer), strict=True):
        assert_same_records(a, b)


def test_ase_reads_our_files_with_units_in_names(tmp_path: Path) -> None:
    record = labelled_molecule(np.random.default_rng(0))
    path = tmp_path / "one.extxyz"
    write_extxyz([record], path)
    atoms = ase.io.read(path, format="extxyz")
    assert isinstance(atoms, Atoms)
    assert atoms.get_chemical_symbols() == ["O", "H", "H"]
    assert np.array_equal(atoms.positions, record.positions_angstrom)
    gradient = atoms.arrays[f"{WB97X}/gradient_hartree_per_angstrom"]
    expected = record.labels[WB97X].gradient_hartree_per_angstrom
    assert expected is not None and np.array_equal(gradient, expected)
    assert atoms.info[f"{WB97X}/total_energy_hartree"] == record.labels[WB97X].total_energy_hartree
    assert atoms.info["charge"] == -1 and atoms.info["multiplicity"] == 2


def test_ase_default_writer_would_lose_precision() -> None:
    """Why we write frames ourselves: ASE prints per-atom columns with %16.8f."""
    atoms = Atoms("H", positions=[[0.123456789012345, 0.0, 0.0]])
    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="extxyz")
    buffer.seek(0)
    lossy = ase.io.read(buffer, format="extxyz")
    assert isinstance(lossy, Atoms) and lossy.positions[0, 0] != 0.123456789012345
    record = StructureRecord(numbers=np.array([1]), positions_angstrom=atoms.positions)
    (back,) = iter_extxyz(io.StringIO(format_frame(record)))
    assert back.positions_angstrom[0, 0] == 0.123456789012345


def test_reads_plain_xyz_from_other_tools(tmp_path: Path) -> None:
    path = tmp_path / "plain.xyz"
    path.write_text("2\nwater fragment\nO 0 0 0\nH 0 0 0.96\n")
    (record,) = iter_extxyz(path)
    assert record.numbers.tolist() == [8, 1]
    assert record.labels == {} and record.key is None
    assert (record.charge, record.multiplicity) == (0, 1)
    assert record.cell_angstrom is None and record.pbc == (False, False, False)


def test_streams_frames_before_a_broken_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "broken.xyz"
    write_extxyz([labelled_molecule(rng), periodic_li(rng)], path)
    with path.open("a") as stream:
        stream.write("5\ncomment\nH 0 0 0\n")  # truncated third frame
    frames = iter_extxyz(path)
    assert next(frames).key == "123"
    assert next(frames).key == "T"
    with pytest.raises(DatasetFormatError, match=r"frame 2 \(line 10\) is truncated"):
        next(frames)


def test_bad_header_and_bad_level_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="expected an atom count"):
        list(iter_extxyz(io.StringIO("two\n\nH 0 0 0\nH 0 0 1\n")))
    record = labelled_molecule(np.random.default_rng(2))
    record.labels["bad:level"] = LabelRecord("bad:level", -1.0)
    with pytest.raises(DatasetFormatError, match="cannot be an extxyz column name") as info:
        write_extxyz([record], io.StringIO())
    assert info.value.key == "123"
