"""AFIR: the bias and its analytic gradient, and paths on EC with GFN2-xTB."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from interphase.labeling.ase_calculator import xtb_calculator
from interphase.structures.afir import (
    AFIRCalculator,
    AFIRParameterError,
    afir_alpha_kj_per_mol_angstrom,
    afir_bias,
    afir_path,
)
from interphase.structures.afir_recipe import afir_batch
from interphase.structures.config import AFIRConfig
from interphase.structures.molecules import molecule

CARBONYL_O = 4  # RDKit atom order of C1COC(=O)O1: C C O C O O H H H H
CARBONYL_C = 3


def _numeric_gradient(x: np.ndarray, z: np.ndarray, a: list[int], b: list[int]) -> np.ndarray:
    gradient, h = np.zeros_like(x), 1e-6
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        gradient[index] = (
            afir_bias(plus, z, a, b, 150.0, 1)[0] - afir_bias(minus, z, a, b, 150.0, 1)[0]
        ) / (2 * h)
    return gradient


@pytest.mark.parametrize(("a", "b"), [([0], [4]), ([0, 1, 2], [3, 4, 5])])
def test_bias_gradient_is_analytic(a: list[int], b: list[int]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)) * 2
    z = np.array([6, 8, 3, 1, 6, 8])
    _, gradient, _ = afir_bias(x, z, a, b, 150.0, 1)
    assert np.allclose(gradient, _numeric_gradient(x, z, a, b), atol=1e-6)


def test_pair_bias_is_rho_alpha_r() -> None:
    x = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.5]])
    alpha = afir_alpha_kj_per_mol_angstrom(200.0)
    push, _, distance = afir_bias(x, np.array([6, 8]), [0], [1], 200.0, 1)
    pull = afir_bias(x, np.array([6, 8]), [0], [1], 200.0, -1)[0]
    assert distance == pytest.approx(2.5)
    assert push == pytest.approx(alpha * 2.5 * 0.01036427, rel=1e-5)  # kJ/mol -> eV
    assert pull == pytest.approx(-push)


def test_alpha_follows_maeda() -> None:
    gamma = 100.0
    expected = gamma / ((2 ** (-1 / 6) - (1 + np.sqrt(1 + gamma / 1.0061)) ** (-1 / 6)) * 3.8164)
    assert afir_alpha_kj_per_mol_angstrom(gamma) == pytest.approx(expected)


def test_bad_afir_settings_are_refused() -> None:
    base = xtb_calculator()
    with pytest.raises(AFIRParameterError, match="share atoms"):
        AFIRCalculator(base, [0, 1], [1], gamma_kj_per_mol=100.0)
    with pytest.raises(AFIRParameterError, match="rho"):
        AFIRCalculator(base, [0], [1], gamma_kj_per_mol=100.0, rho=0)
    with pytest.raises(AFIRParameterError, match="gamma"):
        AFIRCalculator(base, [0], [1], gamma_kj_per_mol=-5.0)


def _ec_with_li_ion(distance_angstrom: float) -> Atoms:
    ec = molecule("EC", 0).atoms.copy()
    o, c = ec.positions[CARBONYL_O], ec.positions[CARBONYL_C]
    axis = (o - c) / np.linalg.norm(o - c)
    return ec + Atoms("Li", positions=[o + axis * distance_angstrom])


def test_push_brings_li_onto_carbonyl_o_and_pull_separates() -> None:
    li = 10
    push = AFIRCalculator(xtb_calculator(charge=1), [li], [CARBONYL_O], gamma_kj_per_mol=100.0)
    pushed = afir_path(_ec_with_li_ion(4.0), push, [100.0, 200.0], max_steps_per_gamma=25)
    distances = [s.afir_distance_angstrom for s in pushed.snapshots]
    assert pushed.error is None
    assert min(distances) < 2.0 < 4.0  # below the Li-O bonding distance (~2.3 Å)
    assert np.isfinite([s.energy_hartree for s in pushed.snapshots]).all()

    pull = AFIRCalculator(
        xtb_calculator(charge=1), [li], [CARBONYL_O], gamma_kj_per_mol=100.0, rho=-1
    )
    pulled = afir_path(_ec_with_li_ion(1.9), pull, [150.0, 250.0], max_steps_per_gamma=25)
    assert pulled.snapshots[-1].afir_distance_angstrom > 4.0
    assert np.isfinite([s.energy_hartree for s in pulled.snapshots]).all()
    steps = [s.step for s in pulled.snapshots]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_push_shortens_an_o_c_pair_in_ec() -> None:
    ec = molecule("EC", 0).atoms.copy()
    start = ec.get_distance(0, CARBONYL_O)
    afir = AFIRCalculator(xtb_calculator(), [0], [CARBONYL_O], gamma_kj_per_mol=100.0)
    path = afir_path(ec, afir, [150.0, 250.0], max_steps_per_gamma=20)
    assert path.snapshots[-1].afir_distance_angstrom < start - 0.1
    assert {s.gamma_kj_per_mol for s in path.snapshots} == {150.0, 250.0}


def test_pair_batch_is_deterministic_and_records_lineage() -> None:
    config = AFIRConfig(
        start_species=["EC"], n_paths=1, gammas_kj_per_mol=[150.0], max_steps_per_gamma=10
    )
    first, again = afir_batch(config), afir_batch(config)
    assert first.items[0].generator == "molecular_cluster"
    snapshots = [i for i in first.items if i.generator == "afir"]
    assert snapshots and all(i.parent == 0 for i in snapshots)
    assert {"pair", "gamma_kj_per_mol", "step"} <= set(snapshots[0].params)
    for a, b in zip(first.items, again.items, strict=True):
        # The same path again; tblite's threaded sums may differ in the last bits.
        np.testing.assert_allclose(
            a.record.positions_angstrom, b.record.positions_angstrom, rtol=0, atol=1e-9
        )
