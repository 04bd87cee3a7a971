"""The engine contract, run over every installed engine with small real inputs.

Energy and analytic gradient must agree with central finite differences, forces
must sum to ~0 (translational invariance), and an engine that is not installed
must say so through ``available()`` and ``EngineUnavailable``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pytest

from interphase.labeling.engines import ENGINES, get_engine
from interphase.labeling.engines.contract import Calculation, EngineUnavailable, InvalidInput
from interphase.labeling.engines.psi4 import Psi4Engine, psi4_keywords, version_tuple
from interphase.labeling.engines.pyscf import PySCFEngine
from interphase.records import StructureRecord

WATER = StructureRecord(
    numbers=np.array([8, 1, 1]),
    positions_angstrom=np.array([[0.0, 0.02, -0.01], [0.0, 0.757, 0.586], [0.01, -0.757, 0.586]]),
)
# bcc Li, conventional 2-atom cell, second atom displaced so forces are non-zero.
LI_BCC = StructureRecord(
    numbers=np.array([3, 3]),
    positions_angstrom=np.array([[0.0, 0.0, 0.0], [1.77, 1.70, 1.74]]),
    cell_angstrom=np.eye(3) * 3.44,
    pbc=(True, True, True),
)


@dataclass(frozen=True)
class Case:
    engine: str
    structure: StructureRecord
    calculation: Calculation
    step_angstrom: float
    tolerance: float  # Hartree/Å
    #: DFT quadrature grids break translational invariance slightly (no grid response).
    sum_tolerance: float = 1e-6


CASES = [
    Case("tblite", WATER, Calculation("GFN2-xTB"), 1e-4, 1e-6),
    Case(
        "pyscf",
        WATER,
        Calculation("PBE", "sto-3g", {"density_fit": False, "conv_tol_hartree": 1e-11}),
        1e-3,
        2e-5,
        1e-4,
    ),
    Case(
        "psi4",
        WATER,
        Calculation(
            "HF",
            "sto-3g",
            {"density_fit": False, "conv_tol_hartree": 1e-11, "density_convergence": 1e-10},
        ),
        1e-3,
        1e-5,
    ),
    Case(
        "gpaw", LI_BCC, Calculation("PBE-D3", None, {"ecut_ev": 250, "kpts": [2, 2, 2]}), 2e-3, 2e-4
    ),
]


def _installed(case: Case) -> Case:
    availability = get_engine(case.engine).available()
    if not availability.ok:
        pytest.skip(f"{case.engine} not installed: {availability.reason}")
    return case


@pytest.fixture(params=CASES, ids=[case.engine for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return _installed(request.param)


def _energy(case: Case, positions: np.ndarray) -> float:
    structure = StructureRecord(
        numbers=case.structure.numbers,
        positions_angstrom=positions,
        cell_angstrom=case.structure.cell_angstrom,
        pbc=case.structure.pbc,
    )
    energy = get_engine(case.engine).compute(structure, case.calculation).total_energy_hartree
    assert energy is not None
    return energy


def test_every_engine_is_registered_with_capabilities() -> None:
    assert set(ENGINES) >= {"tblite", "psi4", "pyscf", "gpaw"}
    assert ENGINES["gpaw"].capabilities.periodic and not ENGINES["psi4"].capabilities.periodic
    assert ENGINES["pyscf"].capabilities.gpu
    assert ENGINES["tblite"].capabilities.charges


@pytest.mark.slow
def test_gradient_matches_central_finite_differences(case: Case) -> None:
    label = get_engine(case.engine).compute(case.structure, case.calculation)
    gradient = label.gradient_hartree_per_angstrom
    assert gradient is not None and gradient.shape == (case.structure.n_atoms, 3)
    assert label.provenance["engine"] == case.engine
    h = case.step_angstrom
    for atom, axis in [(1, 1), (1, 2)]:
        plus = case.structure.positions_angstrom.copy()
        minus = case.structure.positions_angstrom.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = (_energy(case, plus) - _energy(case, minus)) / (2 * h)
        assert gradient[atom, axis] == pytest.approx(numeric, abs=case.tolerance)
    # Translational invariance: the forces on all atoms sum to zero.
    assert np.abs(gradient.sum(axis=0)).max() < case.sum_tolerance


def test_tblite_water_matches_the_xtb_program() -> None:
    # Starting frame of an xtb 6.7.1 GFN2-xTB geometry optimisation of water
    # (xtbopt.log: "energy: -5.070451354560 ... xtb: 6.7.1"); see bench/RESULTS.md.
    water = StructureRecord(
        numbers=np.array([8, 1, 1]),
        positions_angstrom=np.array(
            [[0.0, 0.0, -0.3893611], [0.7629844, 0.0, 0.1946806], [-0.7629844, 0.0, 0.1946806]]
        ),
    )
    energy = get_engine("tblite").compute(water, Calculation("GFN2-xTB")).total_energy_hartree
    assert energy == pytest.approx(-5.070451354560, abs=1e-6)


@pytest.mark.psi4
def test_psi4_and_pyscf_agree_on_hf_def2_svp_water() -> None:
    for name in ("psi4", "pyscf"):
        if not (availability := get_engine(name).available()).ok:
            pytest.skip(f"{name} not installed: {availability.reason}")
    settings = {"density_fit": False, "conv_tol_hartree": 1e-11}
    psi4 = get_engine("psi4").compute(
        WATER, Calculation("HF", "def2-SVP", {**settings, "density_convergence": 1e-10})
    )
    pyscf = get_engine("pyscf").compute(WATER, Calculation("HF", "def2-SVP", settings))
    assert psi4.total_energy_hartree == pytest.approx(pyscf.total_energy_hartree, abs=1e-6)
    assert psi4.gradient_hartree_per_angstrom == pytest.approx(
        pyscf.gradient_hartree_per_angstrom, abs=1e-5
    )
    assert psi4.dipole_e_angstrom == pytest.approx(pyscf.dipole_e_angstrom, abs=1e-4)
    # Settings the installed Psi4 lacks are recorded, never silently claimed.
    not_applied = psi4.provenance["settings_not_applied"]
    assert isinstance(not_applied, dict)
    if version_tuple(str(psi4.provenance["engine_version"])) < (1, 4):
        assert {"dft_pruning_scheme", "s_orthogonalization"} <= set(not_applied)


def test_psi4_keywords_follow_the_installed_version() -> None:
    old, skipped = psi4_keywords({"density_fit": True}, (1, 3))
    assert old["scf_type"] == "df" and old["ints_tolerance"] == 1e-10
    assert "dft_pruning_scheme" not in old and "s_cholesky_tolerance" in skipped
    new, skipped = psi4_keywords({"level_shift_hartree": 0.2}, (1, 6))
    assert new["dft_pruning_scheme"] == "robust"
    assert new["s_orthogonalization"] == "partialcholesky" and new["level_shift"] == 0.2
    assert skipped == {}


def test_missing_psi4_is_reported_unavailable() -> None:
    engine = Psi4Engine(executable="psi4-not-installed-here")
    availability = engine.available()
    assert not availability.ok and "apt-get install psi4" in availability.reason
    with pytest.raises(EngineUnavailable, match="not available"):
        engine.compute(WATER, Calculation("HF", "sto-3g"))


def test_missing_pyscf_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyscf", None)  # import pyscf now raises ImportError
    availability = PySCFEngine().available()
    assert not availability.ok and "interphase[pyscf]" in availability.reason


def test_engines_refuse_what_they_cannot_do() -> None:
    if get_engine("gpaw").available().ok:
        with pytest.raises(InvalidInput, match="periodic"):
            get_engine("gpaw").compute(WATER, Calculation("PBE-D3"))
    if get_engine("pyscf").available().ok:
        with pytest.raises(InvalidInput, match="periodic"):
            get_engine("pyscf").compute(LI_BCC, Calculation("PBE", "sto-3g"))
        with pytest.raises(InvalidInput, match="not a pyscf setting; known: auxbasis"):
            get_engine("pyscf").compute(WATER, Calculation("HF", "sto-3g", {"typo": 1}))
