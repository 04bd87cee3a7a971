"""InterphaseCalculator and the fast inference path: forces, stress, errors, equivalence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.units import Hartree

from interphase.devices import DeviceUnavailableError
from interphase.models.artifact import save_model
from interphase.models.calculator import InterphaseCalculator
from interphase.models.descriptors import UnknownElementError
from interphase.models.inference import InferenceSession
from interphase.models.multihead import MultiHeadPotential, UnknownHeadError, evaluate_structure


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> MultiHeadPotential:
    """Untrained but smooth: enough for force, stress and equivalence checks."""
    torch.manual_seed(0)
    potential = MultiHeadPotential(
        [1, 3, 6, 8], ["PBE-D3", "hybrid"], hidden_sizes=(16, 16), charge_hidden_sizes=(8,)
    )
    # Non-zero self-energies and scales, as after training.
    potential.set_energy_reference(
        np.array([[-0.5, -7.4, -37.8, -75.0], [-0.49, -7.5, -37.9, -75.1]]), np.array([0.1, 0.15])
    )
    return potential.eval()


def ethanol_and_lithium() -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms += Atoms("Li", positions=[[2.2, 0.8, 0.3]])
    atoms.rattle(0.05, seed=2)
    return atoms


def lithium_cell() -> Atoms:
    atoms = bulk("Li", "bcc", a=3.44, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.08, seed=1)
    atoms.set_cell(
        atoms.cell[:] @ np.array([[1.0, 0.03, 0.0], [0.0, 1.0, -0.02], [0.0, 0.0, 1.04]])
    )
    return atoms


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_forces_are_minus_energy_gradient(model: MultiHeadPotential, fast: bool) -> None:
    for atoms, head in ((ethanol_and_lithium(), "hybrid"), (lithium_cell(), "PBE-D3")):
        atoms.calc = InterphaseCalculator(model, head, fast=fast)
        forces = atoms.get_forces()
        indices = [0, 2, len(atoms) - 1]
        numerical = calculate_numerical_forces(atoms, eps=1e-4, iatoms=indices)
        assert np.abs(forces).max() > 1e-2  # eV/Å: not trivially zero
        np.testing.assert_allclose(forces[indices], numerical, atol=1e-6)


def test_stress_is_strain_derivative(model: MultiHeadPotential) -> None:
    atoms = lithium_cell()
    atoms.calc = InterphaseCalculator(model, "PBE-D3")
    stress = atoms.get_stress()
    numerical = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.abs(stress).max() > 1e-3
    np.testing.assert_allclose(stress, numerical, atol=1e-8)


def test_no_stress_without_full_periodicity(model: MultiHeadPotential) -> None:
    atoms = ethanol_and_lithium()
    atoms.calc = InterphaseCalculator(model, "hybrid")
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_units_and_charges_follow_the_model(model: MultiHeadPotential) -> None:
    atoms = ethanol_and_lithium()
    atoms.info["charge"] = 1
    atoms.calc = InterphaseCalculator(model, "hybrid", fast=False)
    plain = evaluate_structure(
        model, atoms.numbers, atoms.positions, None, atoms.pbc, "hybrid", total_charge=1.0
    )
    assert atoms.get_potential_energy() == pytest.approx(plain.energy_hartree * Hartree)
    np.testing.assert_allclose(
        atoms.get_forces(), -plain.gradient_hartree_per_angstrom * Hartree, rtol=1e-12
    )
    charges = atoms.get_charges()
    assert charges.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.ptp(charges) > 1e-3  # distributed, not uniform


def test_fast_path_equals_plain_path_along_a_trajectory(model: MultiHeadPotential) -> None:
    atoms = lithium_cell()
    fast = InferenceSession(model, "PBE-D3", skin_angstrom=1.0)
    plain = InferenceSession(model, "PBE-D3", fast=False)
    rng = np.random.default_rng(4)
    positions = atoms.positions.copy()
    for _ in range(6):
        positions = positions + rng.normal(scale=0.05, size=positions.shape)
        args = (atoms.numbers, positions, atoms.cell[:], atoms.pbc)
        a, b = fast.evaluate(*args, stress=True), plain.evaluate(*args, stress=True)
        assert a.energy_hartree == pytest.approx(b.energy_hartree, abs=1e-10)
        for name in ("gradient_hartree_per_angstrom", "charges_e", "stress_hartree_per_angstrom3"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)
    assert fast.list_builds == 1  # the Verlet list was reused ...
    assert plain.list_builds == 6  # ... where the plain path rebuilt it every time


def test_verlet_list_is_rebuilt_when_an_atom_moves_beyond_half_the_skin(
    model: MultiHeadPotential,
) -> None:
    cutoff = model.pair_cutoff_angstrom
    numbers = np.array([3, 3, 1])
    start = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [cutoff + 1.6, 0.0, 0.0]])
    moved = start.copy()
    moved[2, 0] = cutoff - 1.0  # H comes into range of both Li
    fast = InferenceSession(model, "hybrid", skin_angstrom=1.0)
    fast.evaluate(numbers, start, None, (False,) * 3)
    result = fast.evaluate(numbers, moved, None, (False,) * 3)
    reference = evaluate_structure(model, numbers, moved, None, (False,) * 3, "hybrid")
    assert fast.list_builds == 2
    assert result.energy_hartree == pytest.approx(reference.energy_hartree, abs=1e-10)
    np.testing.assert_allclose(
        result.gradient_hartree_per_angstrom, reference.gradient_hartree_per_angstrom, atol=1e-10
    )


def test_same_structure_is_not_recomputed(model: MultiHeadPotential) -> None:
    atoms = ethanol_and_lithium()
    session = InferenceSession(model, "hybrid")
    first = session.evaluate(atoms.numbers, atoms.positions, None, atoms.pbc)
    assert session.evaluate(atoms.numbers, atoms.positions.copy(), None, atoms.pbc) is first


def test_float32_session_is_close_to_float64(model: MultiHeadPotential) -> None:
    atoms = lithium_cell()
    args = (atoms.numbers, atoms.positions, atoms.cell[:], atoms.pbc)
    single = InferenceSession(model, "PBE-D3", dtype=torch.float32).evaluate(*args)
    double = InferenceSession(model, "PBE-D3").evaluate(*args)
    assert single.energy_hartree == pytest.approx(double.energy_hartree, abs=1e-4)
    np.testing.assert_allclose(
        single.gradient_hartree_per_angstrom, double.gradient_hartree_per_angstrom, atol=1e-5
    )
    assert model.dtype == torch.float64  # the caller's model is left alone


def test_artifact_path_loads_and_predicts_the_same(
    model: MultiHeadPotential, tmp_path: Path
) -> None:
    path = save_model(model, tmp_path / "model.pt")
    atoms = lithium_cell()
    atoms.calc = InterphaseCalculator(path, "PBE-D3")
    expected = InterphaseCalculator(model, "PBE-D3").get_potential_energy(atoms.copy())
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-12)


def test_unknown_head_is_refused(model: MultiHeadPotential) -> None:
    with pytest.raises(UnknownHeadError, match="'CCSD' is not one of this model's heads"):
        InterphaseCalculator(model, "CCSD")


def test_unknown_element_is_refused(model: MultiHeadPotential) -> None:
    atoms = molecule("NH3")
    atoms.calc = InterphaseCalculator(model, "hybrid")
    with pytest.raises(UnknownElementError, match=r"\[7\]"):
        atoms.get_potential_energy()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_request_without_cuda_is_refused(model: MultiHeadPotential) -> None:
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        InterphaseCalculator(model, "hybrid", device="cuda")
