"""Tests of interphase.io.paper_json and the synthetic dataset generator."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from interphase.io.errors import DatasetFormatError
from interphase.io.json_stream import CHUNK_BYTES
from interphase.io.paper_json import iter_paper_json
from interphase.io.paper_json_write import write_paper_json
from interphase.records import XTB_LEVEL, LabelRecord, StructureRecord
from interphase.structures.validate import validate_structure

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_paper_dataset import generate_paper_dataset

WB97X = "wB97X-D3BJ_def2-TZVPD"


def molecule_entry() -> dict[str, Any]:
    return {
        "atomicNumbers": [8, 1, 1],
        "elements": ["O", "H", "H"],
        "positions": [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]],
        "charge": 0,
        "multiplicity": 1,
        "labels": {
            WB97X: {
                "totalEnergy": -76.42183912376541,
                "atomizationEnergy": -0.3512345678901234,
                "gradient": [[0.0, 0.0, 0.0123456789012345], [0.0, 0.1, -0.2], [0.0, -0.1, -0.2]],
                "dipoleMoment": [0.0, 0.0, 0.38712345678912],
                "xtbCharges": [-0.5612345678901234, 0.2806172839450617, 0.2806172839450617],
            }
        },
    }


def periodic_entry() -> dict[str, Any]:
    return {
        "atomicNumbers": [3, 3],
        "elements": ["Li", "Li"],
        "positions": [[0.0, 0.0, 0.0], [1.745, 1.745, 1.7450000000000001]],
        "charge": 0,
        "multiplicity": 1,
        "lattice": [[3.49, 0.0, 0.0], [0.0, 3.49, 0.0], [0.0, 0.0, 3.4900000000000002]],
        "labels": {"PBE-D3": {"totalEnergy": -14.9876543210987, "gradient": [[0.1, 0, 0]] * 2}},
    }


def dump(entries: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(entries))
    return path


def read_one(entry: Any, tmp_path: Path, key: str = "7") -> StructureRecord:
    return next(iter_paper_json(dump({key: entry}, tmp_path / "one.json")))


def format_error(entry: Any, tmp_path: Path, key: str = "7") -> DatasetFormatError:
    with pytest.raises(DatasetFormatError) as info:
        read_one(entry, tmp_path, key)
    return info.value


def test_reads_fields_with_units(tmp_path: Path) -> None:
    record = read_one(molecule_entry(), tmp_path)
    assert record.key == "7"
    assert record.numbers.tolist() == [8, 1, 1]
    assert record.numbers.dtype.kind == "i"
    assert record.positions_angstrom[1, 1] == 0.7572
    assert record.pbc == (False, False, False) and record.cell_angstrom is None
    label = record.labels[WB97X]
    assert label.total_energy_hartree == -76.42183912376541
    assert label.atomization_energy_hartree == -0.3512345678901234
    assert label.gradient_hartree_per_angstrom is not None
    assert label.gradient_hartree_per_angstrom[0, 2] == 0.0123456789012345
    assert label.dipole_e_angstrom is not None and label.dipole_e_angstrom[2] == 0.38712345678912
    assert label.charges_e is None  # xtbCharges are GFN2-xTB, not wB97X
    xtb = record.labels[XTB_LEVEL]
    assert xtb.charges_e is not None and xtb.charges_e[0] == -0.5612345678901234
    assert xtb.total_energy_hartree is None and xtb.gradient_hartree_per_angstrom is None
    assert xtb.provenance == {"paper_json_parent": WB97X}


def test_reads_periodic_lattice(tmp_path: Path) -> None:
    record = read_one(periodic_entry(), tmp_path)
    assert record.pbc == (True, True, True)
    assert record.cell_angstrom is not None
    assert record.cell_angstrom[2, 2] == 3.4900000000000002
    assert set(record.labels) == {"PBE-D3"}
    assert record.labels["PBE-D3"].atomization_energy_hartree is None


def test_elements_only_and_defaults(tmp_path: Path) -> None:
    entry = molecule_entry()
    del entry["atomicNumbers"], entry["charge"], entry["multiplicity"]
    record = read_one(entry, tmp_path)
    assert record.numbers.tolist() == [8, 1, 1]
    assert (record.charge, record.multiplicity) == (0, 1)


def test_xtb_charges_merge_into_existing_xtb_label(tmp_path: Path) -> None:
    entry = molecule_entry()
    entry["labels"][XTB_LEVEL] = {"totalEnergy": -5.07}
    record = read_one(entry, tmp_path)
    xtb = record.labels[XTB_LEVEL]
    assert xtb.total_energy_hartree == -5.07
    assert xtb.charges_e is not None and len(xtb.charges_e) == 3
    assert xtb.provenance["paper_json_parent"] == WB97X


def round_trip(records: list[StructureRecord], tmp_path: Path) -> list[StructureRecord]:
    path = tmp_path / "out.json"
    assert write_paper_json(records, path) == len(records)
    return list(iter_paper_json(path))


def assert_same_record(a: StructureRecord, b: StructureRecord) -> None:
    assert a.key == b.key
    assert np.array_equal(a.numbers, b.numbers)
    assert np.array_equal(a.positions_angstrom, b.positions_angstrom)
    assert (a.cell_angstrom is None) == (b.cell_angstrom is None)
    if a.cell_angstrom is not None and b.cell_angstrom is not None:
        assert np.array_equal(a.cell_angstrom, b.cell_angstrom)
    assert (a.pbc, a.charge, a.multiplicity) == (b.pbc, b.charge, b.multiplicity)
    assert a.labels.keys() == b.labels.keys()
    for level, la in a.labels.items():
        lb = b.labels[level]
        assert la.total_energy_hartree == lb.total_energy_hartree
        assert la.atomization_energy_hartree == lb.atomization_energy_hartree
        for name in ("gradient_hartree_per_angstrom", "dipole_e_angstrom", "charges_e"):
            va, vb = getattr(la, name), getattr(lb, name)
            assert (va is None) == (vb is None), (level, name)
            if va is not None:
                assert np.array_equal(va, vb), (level, name)
        assert la.provenance == lb.provenance


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    source = dump({"7": molecule_entry(), "12": periodic_entry()}, tmp_path / "in.json")
    first = list(iter_paper_json(source))
    second = round_trip(first, tmp_path)
    assert [r.key for r in second] == ["7", "12"]
    for a, b in zip(first, second, strict=True):
        assert_same_record(a, b)
    # The JSON itself is value-identical: xtbCharges back under the parent level.
    written = json.loads((tmp_path / "out.json").read_text())
    assert (
        written["7"]["labels"][WB97X]["xtbCharges"]
        == molecule_entry()["labels"][WB97X]["xtbCharges"]
    )
    assert XTB_LEVEL not in written["7"]["labels"]
    assert "lattice" not in written["7"] and "dipoleMoment" not in written["12"]["labels"]["PBE-D3"]
    assert written["12"] == periodic_entry() | {
        "positions": periodic_entry()["positions"],
        "labels": {"PBE-D3": {"totalEnergy": -14.9876543210987, "gradient": [[0.1, 0.0, 0.0]] * 2}},
    }


def test_round_trip_of_random_floats_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    positions = rng.normal(size=(4, 3)) * 3.0
    record = StructureRecord(
        numbers=np.array([6, 1, 1, 8]),
        positions_angstrom=positions,
        labels={
            "L": LabelRecord("L", float(rng.normal()), None, rng.normal(size=(4, 3)) * 1e-7),
            XTB_LEVEL: LabelRecord(XTB_LEVEL, float(rng.normal()), charges_e=rng.normal(size=4)),
        },
    )
    (back,) = round_trip([record], tmp_path)
    record.key = "0"  # running index assigned on writing
    record.labels[XTB_LEVEL].provenance = {"paper_json_parent": "L"}  # fallback parent
    assert_same_record(record, back)


def test_xtb_charges_written_to_provenance_parent(tmp_path: Path) -> None:
    record = StructureRecord(
        numbers=np.array([3]),
        positions_angstrom=np.zeros((1, 3)),
        multiplicity=2,
        labels={
            "A": LabelRecord("A", -7.0),
            WB97X: LabelRecord(WB97X, -7.4),
            XTB_LEVEL: LabelRecord(
                XTB_LEVEL, charges_e=np.array([0.0]), provenance={"paper_json_parent": "A"}
            ),
        },
        key="x",
    )
    buffer = io.StringIO()
    write_paper_json([record], buffer)
    labels = json.loads(buffer.getvalue())["x"]["labels"]
    assert labels == {"A": {"totalEnergy": -7.0, "xtbCharges": [0.0]}, WB97X: {"totalEnergy": -7.4}}
    # Without provenance the wB97X dict receives them.
    record.labels[XTB_LEVEL].provenance = {}
    buffer = io.StringIO()
    write_paper_json([record], buffer)
    labels = json.loads(buffer.getvalue())["x"]["labels"]
    assert labels[WB97X] == {"totalEnergy": -7.4, "xtbCharges": [0.0]}


def test_xtb_label_with_energy_written_as_own_level(tmp_path: Path) -> None:
    entry = molecule_entry()
    entry["labels"][XTB_LEVEL] = {"totalEnergy": -5.07, "gradient": [[0.0, 0.0, 1.0]] * 3}
    (back,) = round_trip([read_one(entry, tmp_path)], tmp_path)
    written = json.loads((tmp_path / "out.json").read_text())["7"]["labels"]
    assert written[XTB_LEVEL] == {"totalEnergy": -5.07, "gradient": [[0.0, 0.0, 1.0]] * 3}
    assert "xtbCharges" in written[WB97X] and "xtbCharges" not in written[XTB_LEVEL]
    assert back.labels[XTB_LEVEL].total_energy_hartree == -5.07


def test_writer_rejects_unwritable_records(tmp_path: Path) -> None:
    record = read_one(molecule_entry(), tmp_path)
    with pytest.raises(DatasetFormatError, match="duplicate entry key") as info:
        write_paper_json([record, record], tmp_path / "dup.json")
    assert info.value.key == "7"
    record.labels[WB97X].total_energy_hartree = float("nan")
    with pytest.raises(DatasetFormatError, match="non-finite"):
        write_paper_json([record], tmp_path / "nan.json")
    empty = StructureRecord(numbers=np.array([1]), positions_angstrom=np.zeros((1, 3)), key="e")
    with pytest.raises(DatasetFormatError, match="no labels"):
        write_paper_json([empty], tmp_path / "empty.json")


def test_write_to_binary_stream_and_count(tmp_path: Path) -> None:
    records = [read_one(molecule_entry(), tmp_path, key=str(k)) for k in range(3)]
    buffer = io.BytesIO()
    assert write_paper_json(records, buffer) == 3
    buffer.seek(0)
    assert [r.key for r in iter_paper_json(buffer)] == ["0", "1", "2"]
    assert [r.key for r in iter_paper_json(io.StringIO(buffer.getvalue().decode()))] == [
        "0",
        "1",
        "2",
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("positions"), "missing required field 'positions'"),
        (lambda e: e.pop("labels"), "missing required field 'labels'"),
        (lambda e: (e.pop("atomicNumbers"), e.pop("elements")), "'atomicNumbers' (or 'elements')"),
        (lambda e: e.update(labels={}), "labels must be a non-empty object"),
        (lambda e: e.update(labels={WB97X: {}}), "labels contain no data"),
        (lambda e: e.update(labels={WB97X: [1.0]}), "must be an object, got array"),
        (lambda e: e.update(elements=["O", "H", "He"]), "disagree: atom 2"),
        (lambda e: e.update(elements=["O", "H"]), "disagree"),
        (lambda e: (e.pop("atomicNumbers"), e.update(elements=["O", "H", "Qq"])), "'Qq'"),
        (lambda e: e.update(atomicNumbers=[8.0, 1, 1]), "atomicNumbers must be a non-empty list"),
        (lambda e: e.update(atomicNumbers="OHH"), "atomicNumbers must be a non-empty list"),
        (lambda e: e.update(positions=[[0, 0, 0], [1, 1]]), "positions is not a regular array"),
        (lambda e: e.update(positions=[[0, 0, "x"]] * 3), "positions must contain only numbers"),
        (lambda e: e.update(positions=[[0, 0, 0]] * 2), "positions has shape (2, 3)"),
        (lambda e: e.update(charge="0"), "charge must be an integer"),
        (lambda e: e.update(multiplicity=1.5), "multiplicity must be an integer"),
        (lambda e: e.update(lattice=[[1, 0, 0]]), "lattice has shape (1, 3)"),
        (lambda e: e["labels"][WB97X].update(totalEnergy="-76"), "must be a number"),
        (lambda e: e["labels"][WB97X].update(gradient=[[0, 0, 0]]), "has shape (1, 3)"),
        (lambda e: e["labels"][WB97X].update(xtbCharges=[0.0]), "xtbCharges'] has shape (1,)"),
        (lambda e: e["labels"][WB97X].update(dipoleMoment=[0.0, 1.0]), "expected (3,)"),
        (lambda e: e["labels"][WB97X].update(stress=[0.0]), "unknown label field"),
        (lambda e: e.update(comment="hi"), "unknown fields ['comment']"),
        (
            lambda e: e["labels"].update(other={"xtbCharges": [0.0, 0.0, 0.0]}),
            "xtbCharges given under both",
        ),
    ],
)
def test_bad_entries_name_key_and_problem(tmp_path: Path, mutate: Any, message: str) -> None:
    entry = molecule_entry()
    mutate(entry)
    error = format_error(entry, tmp_path, key="k42")
    assert error.key == "k42"
    assert str(error).startswith("entry 'k42': ")
    assert message in str(error)


def test_entry_that_is_not_an_object(tmp_path: Path) -> None:
    error = format_error([1, 2], tmp_path)
    assert error.key == "7" and "got array" in str(error)


def test_unknown_fields_can_be_ignored(tmp_path: Path) -> None:
    entry = molecule_entry()
    entry["comment"] = "x"
    entry["labels"][WB97X]["stress"] = [0.0]
    path = dump({"1": entry}, tmp_path / "u.json")
    (record,) = iter_paper_json(path, ignore_unknown_fields=True)
    assert record.labels[WB97X].total_energy_hartree == -76.42183912376541


def test_null_label_fields_are_missing(tmp_path: Path) -> None:
    entry = molecule_entry()
    entry["labels"][WB97X]["dipoleMoment"] = None
    record = read_one(entry, tmp_path)
    assert record.labels[WB97X].dipole_e_angstrom is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "file is empty"),
        (b'  [{"a": 1}]', "top level must be a JSON object"),
        (b'{"1": {"positions": [1, 2]', r"truncated: it ends inside the entry that begins at l"),
        (b"{\n}\n]", "unexpected data after the top-level object at line 3, column 1, byte 4"),
    ],
)
def test_malformed_files(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(text)
    with pytest.raises(DatasetFormatError, match=message) as info:
        list(iter_paper_json(path))
    assert info.value.key is None


def test_streaming_yields_entries_before_a_malformed_tail(tmp_path: Path) -> None:
    good = json.dumps({"a": molecule_entry(), "b": molecule_entry()})
    path = tmp_path / "tail.json"
    path.write_text(good[:-1] + ', "c": {"positions": [[0, 0, 0]], "labels": {tru')
    records = iter_paper_json(path)
    assert next(records).key == "a"  # the broken tail has not been parsed yet
    assert next(records).key == "b"
    with pytest.raises(
        DatasetFormatError,
        match=r"truncated: it ends inside the entry that begins"
        r" at line 1, column \d+, byte \d+ \(entry 'c'\)",
    ):
        next(records)


def test_reader_is_lazy(tmp_path: Path) -> None:
    """Only the first chunk of a large file is read to yield the first entry."""
    path = tmp_path / "big.json"
    generate_paper_dataset(path, 3000, seed=1, workers=1)
    size = path.stat().st_size
    assert size > 3 * CHUNK_BYTES

    class CountingFile(io.FileIO):
        bytes_read = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            CountingFile.bytes_read += len(data)
            return data

    with CountingFile(path) as stream:
        first = next(iter_paper_json(stream))
        assert first.key == "0"
        assert CountingFile.bytes_read <= CHUNK_BYTES


def test_generated_dataset_is_valid_and_realistic(tmp_path: Path) -> None:
    path = tmp_path / "gen.json"
    generate_paper_dataset(path, 400, seed=5, periodic_fraction=0.1, workers=1)
    records = list(iter_paper_json(path))
    assert [r.key for r in records] == [str(i) for i in range(400)]
    periodic = [r for r in records if r.is_periodic]
    molecular = [r for r in records if not r.is_periodic]
    assert 15 <= len(periodic) <= 70
    for record in records:
        validate_structure(record, check_fragments=not record.is_periodic)
    for record in periodic:
        assert record.n_atoms in (16, 54)
        assert set(record.labels) == {"PBE-D3"}
        assert record.cell_angstrom is not None
        lattice = np.linalg.norm(record.cell_angstrom, axis=1) / round(record.n_atoms / 2) ** (
            1 / 3
        )
        assert np.all(abs(lattice - 3.49) < 0.3)
    for record in molecular:
        assert 10 <= record.n_atoms <= 60
        assert set(record.labels) == {WB97X, XTB_LEVEL}
        charges = record.labels[XTB_LEVEL].charges_e
        assert charges is not None and abs(charges.sum() - record.charge) < 1e-9
        label = record.labels[WB97X]
        assert label.dipole_e_angstrom is not None and label.total_energy_hartree is not None
        assert label.atomization_energy_hartree is not None
        assert label.total_energy_hartree < label.atomization_energy_hartree < 0
    assert {6, 8, 1}.issubset(set(np.concatenate([r.numbers for r in molecular]).tolist()))


def test_generator_is_deterministic_and_worker_independent(tmp_path: Path) -> None:
    generate_paper_dataset(tmp_path / "a.json", 2500, seed=2, workers=1)
    generate_paper_dataset(tmp_path / "b.json", 2500, seed=2, workers=2)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    generate_paper_dataset(tmp_path / "c.json", 10, seed=3, workers=1)
    assert (tmp_path / "c.json").read_bytes() != (tmp_path / "a.json").read_bytes()[:100]
