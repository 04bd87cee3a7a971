"""Tests of interphase.structures.validate."""

from __future__ import annotations

import numpy as np
import pytest

from interphase.records import LabelRecord, StructureRecord
from interphase.structures.validate import (
    InvalidStructureError,
    check_electron_count,
    validate_label_shapes,
    validate_structure,
    validate_symbols,
)

# Water, Å.
WATER_Z = np.array([8, 1, 1])
WATER_XYZ = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]])


def water(**changes: object) -> StructureRecord:
    record = StructureRecord(
        numbers=WATER_Z.copy(),
        positions_angstrom=WATER_XYZ.copy(),
        labels={"wB97X": LabelRecord("wB97X", -76.4, -0.35, np.zeros((3, 3)), np.zeros(3))},
        key="w1",
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def bcc_li(repeat: int = 2, lattice_angstrom: float = 3.49) -> StructureRecord:
    grid = np.array(np.meshgrid(*[np.arange(repeat)] * 3)).reshape(3, -1).T
    fractional = np.concatenate([grid, grid + 0.5]) / repeat
    cell = np.eye(3) * repeat * lattice_angstrom
    return StructureRecord(
        numbers=np.full(len(fractional), 3),
        positions_angstrom=fractional @ cell,
        cell_angstrom=cell,
        pbc=(True, True, True),
        key="li",
    )


def reason_of(record: StructureRecord, **kwargs: object) -> InvalidStructureError:
    with pytest.raises(InvalidStructureError) as info:
        validate_structure(record, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_valid_molecule_and_periodic_cell_pass() -> None:
    validate_structure(water(), check_fragments=True)
    validate_structure(bcc_li(2))
    validate_structure(bcc_li(3))


def test_mismatched_positions_length() -> None:
    error = reason_of(water(positions_angstrom=WATER_XYZ[:2]))
    assert error.reason == "shape"
    assert "'w1'" in str(error) and "(2, 3)" in str(error)


def test_empty_structure_rejected() -> None:
    error = reason_of(water(numbers=np.array([], dtype=int), positions_angstrom=np.zeros((0, 3))))
    assert error.reason == "shape"


def test_gradient_and_charges_length_checked() -> None:
    record = water()
    record.labels["wB97X"].gradient_hartree_per_angstrom = np.zeros((2, 3))
    error = reason_of(record)
    assert error.reason == "label_shape"
    assert "gradient_hartree_per_angstrom" in str(error) and "'wB97X'" in str(error)
    record = water()
    record.labels["x"] = LabelRecord("x", charges_e=np.zeros(4))
    assert reason_of(record).reason == "label_shape"


def test_nonfinite_positions_cell_and_labels() -> None:
    positions = WATER_XYZ.copy()
    positions[1, 2] = np.nan
    error = reason_of(water(positions_angstrom=positions))
    assert error.reason == "non_finite" and "[1]" in str(error)
    li = bcc_li()
    li.cell_angstrom = np.eye(3) * 6.98
    li.cell_angstrom[0, 0] = np.inf
    assert reason_of(li).reason == "non_finite"
    record = water()
    record.labels["wB97X"].total_energy_hartree = float("nan")
    assert reason_of(record).reason == "label_non_finite"


@pytest.mark.parametrize("bad_z", [0, 119, -3])
def test_unknown_element_numbers(bad_z: int) -> None:
    error = reason_of(water(numbers=np.array([8, 1, bad_z])))
    assert error.reason == "unknown_element" and str(bad_z) in str(error)


def test_symbols_must_match_numbers() -> None:
    validate_symbols(WATER_Z, ["O", "H", "H"])
    with pytest.raises(InvalidStructureError) as info:
        validate_symbols(WATER_Z, ["O", "H", "He"], key="k")
    assert info.value.reason == "symbol_mismatch" and "atom 2" in str(info.value)
    with pytest.raises(InvalidStructureError) as info:
        validate_symbols(WATER_Z, ["O", "H", "Xx"])
    assert info.value.reason == "unknown_element"
    with pytest.raises(InvalidStructureError) as info:
        validate_symbols(WATER_Z, ["O", "H"])
    assert info.value.reason == "shape"


def test_periodic_needs_nonsingular_cell() -> None:
    li = bcc_li()
    li.cell_angstrom = None
    assert reason_of(li).reason == "cell"
    li = bcc_li()
    li.cell_angstrom = np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]])
    error = reason_of(li)
    assert error.reason == "cell" and "singular" in str(error)
    li = bcc_li()
    li.cell_angstrom = np.eye(2)
    assert reason_of(li).reason == "cell"


@pytest.mark.parametrize(
    ("charge", "multiplicity", "ok"),
    [
        (0, 1, True),  # 10 electrons, singlet
        (0, 3, True),  # triplet
        (0, 2, False),  # even electrons, doublet: parity
        (1, 2, True),  # 9 electrons, doublet
        (1, 1, False),  # 9 electrons, singlet: parity
        (0, 0, False),  # multiplicity < 1
        (10, 1, True),  # bare nuclei, 0 electrons
        (11, 1, False),  # negative electron count
        (8, 4, False),  # 2 electrons cannot give a quartet (and parity)
        (7, 4, True),  # 3 electrons, quartet
    ],
)
def test_electron_count(charge: int, multiplicity: int, ok: bool) -> None:
    record = water(charge=charge, multiplicity=multiplicity)
    if ok:
        validate_structure(record)
    else:
        assert reason_of(record).reason == "electron_count"


def test_electron_count_not_checked_for_periodic() -> None:
    li = bcc_li()
    li.multiplicity = 2  # 48 electrons would need odd multiplicity
    validate_structure(li)
    with pytest.raises(InvalidStructureError):
        check_electron_count(li.numbers, 0, 2)


def test_too_close_atoms_named() -> None:
    positions = WATER_XYZ.copy()
    positions[2] = positions[1] + [0.0, 0.0, 0.25]  # H-H 0.25 Å < 0.5 * 0.62 Å
    error = reason_of(water(positions_angstrom=positions))
    assert error.reason == "too_close"
    assert "atoms 1 (H) and 2 (H)" in str(error) and "0.250 Å" in str(error)
    # A stricter fraction rejects the genuine O-H bond (0.96 Å < 1.0 * 0.97 Å).
    assert reason_of(water(), min_distance_fraction=1.0).reason == "too_close"


def test_periodic_minimum_image_distance() -> None:
    li = bcc_li(2)  # 6.98 Å cell
    positions = li.positions_angstrom.copy()
    positions[0] = [0.1, 0.1, 0.1]
    positions[1] = [6.88, 6.88, 6.88]  # 0.35 Å from atom 0 through the corner
    li.positions_angstrom = positions
    li.numbers = li.numbers.copy()
    error = reason_of(li)
    assert error.reason == "too_close" and "atoms 0 (Li) and 1 (Li)" in str(error)
    assert "0.346 Å" in str(error)
    # Without periodicity the same two atoms are 11.9 Å apart and pass.
    li.pbc = (False, False, False)
    li.cell_angstrom = None
    validate_structure(li)


def test_skewed_cell_minimum_image() -> None:
    cell = np.array([[4.0, 0.0, 0.0], [3.9, 1.0, 0.0], [0.0, 0.0, 5.0]])
    record = StructureRecord(
        numbers=np.array([3, 3]),
        positions_angstrom=np.array([[0.0, 0.0, 0.0], [3.6, 0.95, 0.0]]),  # ~ a2 - 0.3 x
        cell_angstrom=cell,
        pbc=(True, True, True),
    )
    # Image of atom 1 shifted by -a2 is at (-0.3, -0.05, 0): 0.30 Å from atom 0.
    error = reason_of(record)
    assert error.reason == "too_close" and "0.304 Å" in str(error)


def test_self_image_in_tiny_cell() -> None:
    record = StructureRecord(
        numbers=np.array([3]),
        positions_angstrom=np.zeros((1, 3)),
        cell_angstrom=np.eye(3) * 1.0,
        pbc=(True, True, True),
    )
    error = reason_of(record)
    assert error.reason == "too_close" and "own periodic image" in str(error)
    record.cell_angstrom = np.eye(3) * 3.0
    validate_structure(record)


def test_large_structures_use_neighbour_search() -> None:
    li = bcc_li(9)  # 1458 atoms > dense limit
    validate_structure(li)
    li.positions_angstrom = li.positions_angstrom.copy()
    li.positions_angstrom[5] = li.positions_angstrom[4] + 0.5
    assert reason_of(li).reason == "too_close"
    li.pbc = (False, False, False)
    assert reason_of(li).reason == "too_close"


def test_fragment_check() -> None:
    dimer = StructureRecord(
        numbers=np.concatenate([WATER_Z, WATER_Z]),
        positions_angstrom=np.concatenate([WATER_XYZ, WATER_XYZ + np.array([0.0, 0.0, 3.0])]),
    )
    validate_structure(dimer, check_fragments=True)  # H-bond distance: one cluster
    dimer.positions_angstrom = np.concatenate([WATER_XYZ, WATER_XYZ + np.array([0.0, 0.0, 12.0])])
    validate_structure(dimer)  # not checked by default
    error = reason_of(dimer, check_fragments=True)
    assert error.reason == "fragments" and "2 fragments of [3, 3]" in str(error)
    validate_structure(dimer, check_fragments=True, max_fragment_gap_angstrom=12.0)


def test_fragment_check_large_structure() -> None:
    li = bcc_li(9)
    li.pbc = (False, False, False)
    li.cell_angstrom = None
    validate_structure(li, check_fragments=True)
    li.positions_angstrom = li.positions_angstrom.copy()
    li.positions_angstrom[0] -= 50.0
    error = reason_of(li, check_fragments=True)
    assert error.reason == "fragments" and "[1, 1457]" in str(error)


def test_validate_label_shapes_dipole() -> None:
    with pytest.raises(InvalidStructureError) as info:
        validate_label_shapes(LabelRecord("x", dipole_e_angstrom=np.zeros(2)), 3, key="k")
    assert info.value.reason == "label_shape" and info.value.key == "k"


def test_validation_is_fast() -> None:
    import timeit

    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*[np.arange(3)] * 3)).reshape(3, -1).T[:20] * 1.5
    molecule = StructureRecord(
        numbers=np.array([6, 1] * 10),
        positions_angstrom=grid + rng.normal(scale=0.01, size=(20, 3)),
        labels={"a": LabelRecord("a", -1.0, -0.1, np.zeros((20, 3)), np.zeros(3))},
    )
    li = bcc_li(3)
    per_molecule = min(timeit.repeat(lambda: validate_structure(molecule), number=200, repeat=3))
    per_cell = min(timeit.repeat(lambda: validate_structure(li), number=50, repeat=3))
    # Generous bounds (shared CI machines); typical: ~35 µs and ~150 µs.
    assert per_molecule / 200 < 300e-6
    assert per_cell / 50 < 2e-3


def test_real_but_unsupported_element_is_refused() -> None:
    record = StructureRecord(
        numbers=np.array([92, 8]),  # uranium: an element, outside GFN2-xTB's H..Rn
        positions_angstrom=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.8]]),
        multiplicity=1,
        key="u",
    )
    with pytest.raises(InvalidStructureError, match="not supported") as info:
        validate_structure(record)
    assert info.value.reason == "unsupported_element"
    assert "'U'" in str(info.value)
