"""The metal suite's properties and checks on EMT copper, a reference that costs nothing.

A calculator that is EMT with every length stretched by 1 % has a₀ 1 % larger,
B smaller by 1.01³ and phonon frequencies smaller by 1.01: the a₀ check (0.5 %)
must fail while an identical surface passes everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from interphase.validation.crystal import (
    Crystal,
    cubic_elastic_constants,
    equation_of_state,
)
from interphase.validation.suites import (
    SUITES,
    SuiteError,
    compare,
    compute,
    metal_settings,
    suite_named,
    suite_settings,
)

COPPER = {"symbol": "Cu", "lattice": "fcc", "a_guess_angstrom": 3.6, "phonon_supercell": [2, 2, 2]}


class StretchedEMT(Calculator):  # type: ignore[misc]
    """EMT of the structure shrunk by ``stretch``: every length scale grows by ``stretch``."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012

    def __init__(self, stretch: float) -> None:
        super().__init__()
        self.stretch = stretch

    def calculate(
        self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        shrunk = self.atoms.copy()
        shrunk.set_cell(np.asarray(shrunk.cell) / self.stretch, scale_atoms=True)
        shrunk.calc = EMT()
        self.results = {
            "energy": float(shrunk.get_potential_energy()),
            "forces": shrunk.get_forces() / self.stretch,
        }


@pytest.fixture(scope="module")
def emt_copper() -> dict[str, Any]:
    settings = suite_settings(SUITES["metal"], COPPER)
    return compute(SUITES["metal"], settings, lambda _charge: EMT())


def test_emt_copper_has_its_known_properties(emt_copper: dict[str, Any]) -> None:
    # EMT's copper (ASE's parameters): a = 3.59 Å, B = 134 GPa, C44 = 90 GPa;
    # C11 > C12 > 0 and positive phonons at X and L.
    assert emt_copper["a0_angstrom"] == pytest.approx(3.59, abs=0.01)
    assert emt_copper["bulk_modulus_gpa"] == pytest.approx(134, rel=0.03)
    assert emt_copper["c11_gpa"] > emt_copper["c12_gpa"] > 0
    assert emt_copper["c44_gpa"] == pytest.approx(90, rel=0.05)
    assert emt_copper["c11_gpa"] + 2 * emt_copper["c12_gpa"] == pytest.approx(
        3 * emt_copper["bulk_modulus_gpa"], rel=1e-6
    )
    assert set(emt_copper["phonon_thz"]) >= {"X", "L"}
    assert all(f > 1.0 for f in emt_copper["phonon_thz"]["X"])
    assert 0.5 < emt_copper["vacancy_formation_ev"] < 2.0
    assert 0.5 < emt_copper["surface_energy_100_j_per_m2"] < 2.5


def test_the_same_surface_passes_every_check(emt_copper: dict[str, Any]) -> None:
    checks = compare(SUITES["metal"], emt_copper, emt_copper)
    assert all(check.passed for check in checks)
    assert {c.name for c in checks} >= {"a0_angstrom", "c44_gpa", "phonon_X_thz"}


def test_a_one_percent_longer_lattice_fails_a0_and_the_phonons(
    emt_copper: dict[str, Any],
) -> None:
    settings = suite_settings(SUITES["metal"], COPPER)
    stretched = compute(SUITES["metal"], settings, lambda _charge: StretchedEMT(1.01))
    assert stretched["a0_angstrom"] == pytest.approx(1.01 * emt_copper["a0_angstrom"], rel=1e-4)
    assert stretched["bulk_modulus_gpa"] == pytest.approx(
        emt_copper["bulk_modulus_gpa"] / 1.01**3, rel=2e-3
    )
    for point, frequencies in emt_copper["phonon_thz"].items():
        np.testing.assert_allclose(
            stretched["phonon_thz"][point], np.array(frequencies) / 1.01, rtol=2e-3
        )
    checks = {c.name: c for c in compare(SUITES["metal"], stretched, emt_copper)}
    assert not checks["a0_angstrom"].passed  # 1 % > 0.5 %
    assert checks["bulk_modulus_gpa"].passed  # 3 % < 5 %
    assert checks["phonon_mean_abs_relative"].passed  # 1 % < 3 %
    assert checks["phonon_mean_abs_relative"].difference == pytest.approx(1 - 1 / 1.01, rel=0.05)


def test_elastic_constants_reuse_the_equation_of_state() -> None:
    crystal = Crystal("Cu", "fcc", 3.6)
    eos = equation_of_state(crystal, EMT())
    elastic = cubic_elastic_constants(crystal, EMT(), eos)
    assert elastic.a0_angstrom == eos.a0_angstrom
    assert elastic.bulk_modulus_gpa == eos.bulk_modulus_gpa


def test_an_unstable_guess_is_refused() -> None:
    with pytest.raises(ValueError, match="no energy minimum"):
        equation_of_state(Crystal("Cu", "fcc", 9.0), EMT(), max_recentres=1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lattice": "hcp"}, "bcc or fcc"),
        ({"a_guess_angstrom": 0.1}, "1 to 10"),
        ({"phonon_supercell": (9, 9, 9)}, "1 to 8"),
        ({"colour": "red"}, "unknown metal suite setting"),
    ],
)
def test_bad_metal_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        metal_settings(values)


def test_an_unknown_suite_names_the_known_ones() -> None:
    with pytest.raises(SuiteError, match="known suites: metal, electrolyte"):
        suite_named("phonons")
