"""EnergyGradientGP on a Lennard-Jones Li trimer (ASE calculator, eV -> Hartree)."""

from __future__ import annotations

import io

import gpytorch
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.units import Hartree
from scipy.spatial.transform import Rotation

from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.errors import GPInputError, GPNotFittedError, GPTooLargeError
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.persistence import gp_from_bytes, gp_to_bytes
from tests.gpr.same_prediction import assert_same_prediction

TRIMER_ANGSTROM = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.5, 2.6, 0.0]])
NUMBERS = np.array([3, 3, 3])


def lj_label(
    positions: np.ndarray, pbc: bool = False, cell: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Energy (Hartree) and gradient (Hartree/Å) of a Lennard-Jones Li system."""
    atoms = Atoms(numbers=[3] * len(positions), positions=positions)
    if pbc or cell is not None:
        atoms.cell = np.eye(3) * 6.0 if cell is None else cell
        atoms.pbc = True
    atoms.calc = LennardJones(sigma=2.7, epsilon=0.1, rc=6.0, smooth=True)
    return atoms.get_potential_energy() / Hartree, -atoms.get_forces() / Hartree


def rattled_trimers(n: int, seed: int, amplitude: float = 0.05) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    positions = TRIMER_ANGSTROM + rng.normal(scale=amplitude, size=(n, 3, 3))
    labels = [lj_label(p) for p in positions]
    energies = np.array([e for e, _ in labels])
    gradients = np.array([g for _, g in labels])
    return positions, energies, gradients


@pytest.fixture(scope="module")
def trimer_data() -> tuple[np.ndarray, ...]:
    return rattled_trimers(35, seed=0)


@pytest.fixture(scope="module")
def fitted(trimer_data: tuple[np.ndarray, ...]) -> EnergyGradientGP:
    positions, energies, gradients = trimer_data
    return EnergyGradientGP(NUMBERS, periodic=False, training_iterations=40, restarts=2).fit(
        positions[:25], energies[:25], gradients[:25]
    )


def test_predicts_held_out_energies_and_gradients(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    positions, energies, gradients = trimer_data
    prediction = fitted.predict(positions[25:])
    energy_mae = np.abs(prediction.energy_hartree - energies[25:]).mean()
    gradient_mae = np.abs(prediction.gradient_hartree_per_angstrom - gradients[25:]).mean()
    # Tolerance: 5% of the spread of the held-out energies / of the mean gradient
    # size (seen: 0.5% and 1.6%). The training mean energy gives ~57%, zero gradients 100%.
    assert energy_mae < 0.05 * energies[25:].std()
    assert gradient_mae < 0.05 * np.abs(gradients[25:]).mean()


def test_fits_training_data_closely(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    positions, energies, _ = trimer_data
    prediction = fitted.predict(positions[:25])
    assert np.abs(prediction.energy_hartree - energies[:25]).max() < 0.02 * energies.std()


def test_std_grows_away_from_data(fitted: EnergyGradientGP) -> None:
    near = fitted.predict(TRIMER_ANGSTROM[None]).energy_std_hartree[0]
    far = fitted.predict((TRIMER_ANGSTROM * 1.4)[None]).energy_std_hartree[0]
    assert far > 10 * near


def finite_difference_gradient(
    gp: EnergyGradientGP, x: np.ndarray, step: float = 1e-4
) -> np.ndarray:
    """Central differences of the GP mean energy (Hartree/Å) at one structure (N, 3)."""
    gradient = np.zeros_like(x)
    for atom in range(len(x)):
        for axis in range(3):
            plus, minus = x.copy(), x.copy()
            plus[atom, axis] += step
            minus[atom, axis] -= step
            energies = gp.predict(np.stack([plus, minus])).energy_hartree
            gradient[atom, axis] = (energies[0] - energies[1]) / (2 * step)
    return gradient


def test_gradient_is_derivative_of_mean_energy(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    x = trimer_data[0][30]
    finite_difference = finite_difference_gradient(fitted, x)
    predicted = fitted.predict(x[None]).gradient_hartree_per_angstrom[0]
    # Not exact for molecules: the Kabsch frame moves with x and the GP is only
    # approximately rotation invariant; a few % of the gradient size.
    assert np.abs(predicted - finite_difference).max() < 0.05 * np.abs(finite_difference).max()


def test_rigid_motion_of_a_molecule_changes_nothing(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    x = trimer_data[0][3]
    rotation = Rotation.from_euler("xyz", [0.7, -1.1, 2.3]).as_matrix()
    moved = x @ rotation.T + np.array([4.0, -2.0, 1.0])
    original, transformed = (
        fitted.predict(x[None]),
        fitted.predict(moved[None]),
    )
    np.testing.assert_allclose(transformed.energy_hartree, original.energy_hartree, atol=1e-10)
    np.testing.assert_allclose(
        transformed.gradient_hartree_per_angstrom[0],
        original.gradient_hartree_per_angstrom[0] @ rotation.T,
        atol=1e-10,
    )


def test_bytes_round_trip_predicts_identically(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    restored = gp_from_bytes(gp_to_bytes(fitted))
    before, after = fitted.predict(trimer_data[0]), restored.predict(trimer_data[0])
    assert_same_prediction(after, before)
    assert restored.hyperparameters() == fitted.hyperparameters()  # copied, not recomputed


def test_bytes_stored_before_the_noise_prior_still_load(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    payload = torch.load(io.BytesIO(gp_to_bytes(fitted)), weights_only=True)
    state = payload["model_state"]
    for key in [k for k in state if "noise_prior" in k]:
        del state[key]  # as written by interphase before the noise prior
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    restored = gp_from_bytes(buffer.getvalue())
    assert_same_prediction(restored.predict(trimer_data[0]), fitted.predict(trimer_data[0]))


def test_periodic_cell_uses_raw_coordinates() -> None:
    rng = np.random.default_rng(1)
    positions = TRIMER_ANGSTROM + rng.normal(scale=0.05, size=(12, 3, 3))
    labels = [lj_label(p, pbc=True) for p in positions]
    energies = np.array([e for e, _ in labels])
    gradients = np.array([g for _, g in labels])
    gp = EnergyGradientGP(NUMBERS, periodic=True, training_iterations=30).fit(
        positions, energies, gradients
    )
    shifted = positions[:1] + 0.3  # a rigid shift is a new input for a periodic GP
    assert not np.allclose(
        gp.predict(shifted).energy_hartree, gp.predict(positions[:1]).energy_hartree
    )
    hyper = gp.hyperparameters()
    assert set(hyper) == {
        "lengthscale_angstrom",
        "outputscale_hartree2",
        "noise_hartree2",
        "mean_hartree",
    }
    assert hyper["lengthscale_angstrom"] > 0


def test_shape_mismatch_and_too_few_points_raise(trimer_data: tuple[np.ndarray, ...]) -> None:
    positions, energies, gradients = trimer_data
    gp = EnergyGradientGP(NUMBERS, periodic=False)
    with pytest.raises(GPInputError, match="energies_hartree"):
        gp.fit(positions[:5], energies[:4], gradients[:5])
    with pytest.raises(GPInputError, match="gradients"):
        gp.fit(positions[:5], energies[:5], gradients[:5, :2])
    with pytest.raises(GPInputError, match="positions_angstrom"):
        gp.fit(positions[:5, :2], energies[:5], gradients[:5, :2])
    with pytest.raises(GPInputError, match="at least 2"):
        gp.fit(positions[:1], energies[:1], gradients[:1])
    with pytest.raises(GPNotFittedError):
        gp.predict(positions[:1])
    assert issubclass(GPInputError, ValueError)


def test_size_guard_refuses_before_allocating(trimer_data: tuple[np.ndarray, ...]) -> None:
    positions, energies, gradients = trimer_data
    gp = EnergyGradientGP(
        NUMBERS, periodic=False, max_outputs=99, training_iterations=5, restarts=1
    )
    # 10 structures x (3*3 + 1) = 100 outputs > 99
    with pytest.raises(GPTooLargeError, match="max_outputs=99"):
        gp.fit(positions[:10], energies[:10], gradients[:10])
    gp.fit(positions[:9], energies[:9], gradients[:9])  # 90 outputs is allowed


# ---------------------------------------------------------------- SOAP inputs
SOAP = DescriptorSettings(kind="soap", n_max=3, l_max=2)


@pytest.fixture(scope="module")
def fitted_soap(trimer_data: tuple[np.ndarray, ...]) -> EnergyGradientGP:
    positions, energies, gradients = trimer_data
    return EnergyGradientGP(
        NUMBERS, periodic=False, descriptor=SOAP, training_iterations=30, restarts=2
    ).fit(positions[:25], energies[:25], gradients[:25])


def test_soap_gp_predicts_held_out_energies_and_forces(
    fitted_soap: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    positions, energies, gradients = trimer_data
    prediction = fitted_soap.predict(positions[25:])
    # Same tolerances as the Cartesian GP (seen: 0.01% and 0.06%).
    assert np.abs(prediction.energy_hartree - energies[25:]).mean() < 0.05 * energies[25:].std()
    gradient_error = np.abs(prediction.gradient_hartree_per_angstrom - gradients[25:]).mean()
    assert gradient_error < 0.05 * np.abs(gradients[25:]).mean()
    assert set(fitted_soap.hyperparameters()) >= {"lengthscale_soap", "outputscale_hartree2"}


def test_soap_gradient_is_exact_derivative_and_invariant(
    fitted_soap: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    x = trimer_data[0][30]
    finite_difference = finite_difference_gradient(fitted_soap, x, step=1e-3)
    predicted = fitted_soap.predict(x[None]).gradient_hartree_per_angstrom[0]
    # SOAP is invariant, so unlike Kabsch-aligned inputs the GP gradient is the
    # derivative of the GP energy up to the finite-difference error (seen: 6e-6).
    assert np.abs(predicted - finite_difference).max() < 1e-3 * np.abs(finite_difference).max()
    rotation = Rotation.from_euler("xyz", [0.3, 1.2, -0.4]).as_matrix()
    moved = fitted_soap.predict((x @ rotation.T + 2.0)[None])
    assert moved.energy_hartree[0] == pytest.approx(
        fitted_soap.predict(x[None]).energy_hartree[0], abs=1e-10
    )
    np.testing.assert_allclose(
        moved.gradient_hartree_per_angstrom[0], predicted @ rotation.T, atol=1e-9
    )


def test_soap_std_grows_away_from_data_and_round_trips(fitted_soap: EnergyGradientGP) -> None:
    near = fitted_soap.predict(TRIMER_ANGSTROM[None]).energy_std_hartree[0]
    far = fitted_soap.predict((TRIMER_ANGSTROM * 1.4)[None]).energy_std_hartree[0]
    assert far > 10 * near
    restored = gp_from_bytes(gp_to_bytes(fitted_soap))
    probe = (TRIMER_ANGSTROM * 1.1)[None]
    assert restored.descriptor == SOAP
    assert_same_prediction(restored.predict(probe), fitted_soap.predict(probe))


def test_periodic_soap_needs_cells_and_sees_them() -> None:
    rng = np.random.default_rng(3)
    base = np.array([[0.0, 0.0, 0.0], [1.75, 1.75, 1.75]])  # bcc Li, a = 3.5 Å
    positions = base + rng.normal(scale=0.08, size=(14, 2, 3))
    cells = np.repeat(np.eye(3)[None] * 3.5, 14, axis=0)
    labels = [lj_label(p, cell=c) for p, c in zip(positions, cells, strict=True)]
    energies = np.array([e for e, _ in labels])
    gradients = np.array([g for _, g in labels])
    gp = EnergyGradientGP(
        np.array([3, 3]), periodic=True, descriptor=SOAP, training_iterations=20, restarts=1
    )
    with pytest.raises(GPInputError, match="cells_angstrom"):
        gp.fit(positions, energies, gradients)
    gp.fit(positions[:10], energies[:10], gradients[:10], cells[:10])
    with pytest.raises(GPInputError, match="cells_angstrom"):
        gp.predict(positions[10:])
    prediction = gp.predict(positions[10:], cells[10:])
    # Periodic images enter through dscribe's numerical derivatives (seen: 3e-5 and 2e-4).
    assert np.abs(prediction.energy_hartree - energies[10:]).max() < 0.01 * energies.std()
    gradient_error = np.abs(prediction.gradient_hartree_per_angstrom - gradients[10:]).mean()
    assert gradient_error < 0.05 * np.abs(gradients).mean()
    squeezed = gp.predict(positions[10:11], cells[10:11] * 0.95)
    assert abs(squeezed.energy_hartree[0] - prediction.energy_hartree[0]) > energies.std()


def test_hyperparameters_from_a_farthest_point_sample_condition_on_all(
    trimer_data: tuple[np.ndarray, ...],
) -> None:
    positions, energies, gradients = trimer_data
    gp = EnergyGradientGP(
        NUMBERS, periodic=False, training_iterations=10, restarts=1, max_hyperparameter_outputs=80
    ).fit(positions[:20], energies[:20], gradients[:20])
    assert gp.hyperparameter_structures == 8  # 80 outputs / 10 per trimer
    assert gp.search is not None and len(gp.search.restart_losses) == 1
    # Conditioned on all 20: with the same hyperparameters, a GP on the first 8 alone
    # misses the other 12 training energies by far more (seen: 6x) and is less certain.
    few = EnergyGradientGP(NUMBERS, periodic=False).fit(
        positions[:8], energies[:8], gradients[:8], hyperparameters=gp.hyperparameters()
    )
    on_all, on_few = gp.predict(positions[8:20]), few.predict(positions[8:20])
    error_all = np.abs(on_all.energy_hartree - energies[8:20]).mean()
    error_few = np.abs(on_few.energy_hartree - energies[8:20]).mean()
    assert error_all < 0.5 * error_few
    assert on_all.energy_std_hartree.mean() < 0.5 * on_few.energy_std_hartree.mean()


def test_given_hyperparameters_only_condition(
    fitted: EnergyGradientGP, trimer_data: tuple[np.ndarray, ...]
) -> None:
    positions, energies, gradients = trimer_data
    again = EnergyGradientGP(NUMBERS, periodic=False).fit(
        positions[:25], energies[:25], gradients[:25], hyperparameters=fitted.hyperparameters()
    )
    assert again.search is None
    for key, value in fitted.hyperparameters().items():
        assert again.hyperparameters()[key] == pytest.approx(value, rel=1e-9, abs=1e-15)
    np.testing.assert_allclose(
        again.predict(positions[25:]).energy_hartree,
        fitted.predict(positions[25:]).energy_hartree,
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.filterwarnings("ignore::gpytorch.utils.warnings.NumericalWarning")  # gpytorch's own
@pytest.mark.parametrize("which", ["fitted", "fitted_soap"])
def test_energy_posterior_equals_gpytorch_prediction(
    which: str, trimer_data: tuple[np.ndarray, ...], request: pytest.FixtureRequest
) -> None:
    gp: EnergyGradientGP = request.getfixturevalue(which)
    x, _, _ = gp._inputs(trimer_data[0][25:], None)
    model = gp._require_model()
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10**9):
        reference = model(torch.as_tensor(x))
        expected_mean, expected_variance = reference.mean, reference.variance[:, 0]
    mean, variance = gp._posterior().predict(torch.as_tensor(x))
    # The variance is prior minus explained variance: rounding scales with the prior.
    variance_atol = 1e-14 * max(1.0, model.covar_module.outputscale.item())
    torch.testing.assert_close(mean, expected_mean, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(variance, expected_variance, rtol=1e-6, atol=variance_atol)
    energy_mean, energy_variance = gp._posterior().predict(torch.as_tensor(x), gradients=False)
    torch.testing.assert_close(energy_mean[:, 0], mean[:, 0], rtol=1e-6, atol=1e-12)  # sum order
    torch.testing.assert_close(energy_variance, variance, rtol=1e-6, atol=variance_atol)


def test_set_hyperparameters_by_hand(trimer_data: tuple[np.ndarray, ...]) -> None:
    positions, energies, gradients = trimer_data
    gp = EnergyGradientGP(NUMBERS, periodic=False, training_iterations=5, restarts=1).fit(
        positions[:10], energies[:10], gradients[:10]
    )
    before = gp.predict(positions[10:12]).energy_hartree
    gp.set_hyperparameters(lengthscale_angstrom=0.123456789, outputscale_hartree2=2e-5)
    assert gp.hyperparameters()["lengthscale_angstrom"] == pytest.approx(0.123456789, rel=1e-12)
    assert gp.hyperparameters()["outputscale_hartree2"] == pytest.approx(2e-5, rel=1e-12)
    assert not np.allclose(gp.predict(positions[10:12]).energy_hartree, before)
    with pytest.raises(GPInputError, match="bounds"):
        gp.set_hyperparameters(lengthscale_angstrom=1e6)
    with pytest.raises(GPInputError, match="positive"):
        gp.set_hyperparameters(outputscale_hartree2=-1.0)
