"""The hyperparameter search: its loss is GPyTorch's, its result a local optimum of it."""

from __future__ import annotations

import math

import gpytorch
import numpy as np
import pytest
import torch

from interphase.gpr import gp as gp_module
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.hyperparameters import NOISE_RATIO_BOUNDS
from interphase.gpr.inputs import internal_gradient_basis, rigid_motion_count
from interphase.gpr.likelihood import ProfileLikelihood, ProfilePoint
from tests.gpr.test_gp import NUMBERS, rattled_trimers


@pytest.fixture(scope="module", params=["one stage", "coarse to fine"])
def fitted(request: pytest.FixtureRequest) -> EnergyGradientGP:
    """20 trimers; "coarse to fine": grid and restarts on 8 of them, refined on all 20."""
    positions, energies, gradients = rattled_trimers(20, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "coarse to fine":
            patch.setattr(gp_module, "COARSE_HYPERPARAMETER_OUTPUTS", 80)  # 8 trimers
        gp = EnergyGradientGP(NUMBERS, periodic=False, training_iterations=100, restarts=2)
        gp.fit(positions, energies, gradients)
    assert gp.search is not None
    assert (gp.search.refined_loss is not None) == (request.param == "coarse to fine")
    assert gp.hyperparameter_structures == 20
    return gp


def gpytorch_loss(model: gpytorch.models.ExactGP) -> float:
    """−(log marginal likelihood + log priors) per output, by GPyTorch itself."""
    model.train()
    model.likelihood.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    x, y = model.train_inputs[0], model.train_targets
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10**9):
        loss = float(-mll(model(x), y))
    model.eval()
    model.likelihood.eval()
    return loss


def scaled(model: gpytorch.models.ExactGP) -> dict[str, float]:
    return {
        "lengthscale": model.covar_module.base_kernel.lengthscale.item(),
        "outputscale": model.covar_module.outputscale.item(),
        "noise": model.likelihood.noise.item(),
        "mean": model.mean_module.constant.item(),
    }


def bounds(model: gpytorch.models.ExactGP) -> dict[str, tuple[float, float]]:
    constraints = {
        "lengthscale": model.covar_module.base_kernel.raw_lengthscale_constraint,
        "outputscale": model.covar_module.raw_outputscale_constraint,
        "noise": model.likelihood.raw_noise_constraint,
    }
    return {
        name: (float(c.lower_bound) * (1 + 1e-9), float(c.upper_bound) * (1 - 1e-9))
        for name, c in constraints.items()
    }


def put(model: gpytorch.models.ExactGP, values: dict[str, float]) -> None:
    dtype = torch.float64
    with torch.no_grad():
        model.covar_module.base_kernel.lengthscale = torch.tensor(
            values["lengthscale"], dtype=dtype
        )
        model.covar_module.outputscale = torch.tensor(values["outputscale"], dtype=dtype)
        model.likelihood.noise = torch.tensor(values["noise"], dtype=dtype)
        model.mean_module.constant.fill_(values["mean"])


def test_search_loss_is_gpytorch_marginal_likelihood_with_priors(fitted: EnergyGradientGP) -> None:
    model = fitted._require_model()
    assert fitted.search is not None
    best = fitted.search.final_loss
    # At the search's lower noise ratio (1e-10) the kernel's condition number is
    # ~1e10, and the two factorisations then agree to ~1e-7 only.
    assert gpytorch_loss(model) == pytest.approx(best, rel=2e-7)
    # The same function of (l, ρ) away from the optimum too.
    values = scaled(model)
    profile = ProfileLikelihood(model, fitted._median_distance)
    ratio = 10 * values["noise"] / values["outputscale"]
    point = profile.point(math.log(0.7 * values["lengthscale"]), math.log(ratio))
    assert math.isfinite(point.loss) and point.loss > best
    put(model, {**values, **_as_dict(point)})
    try:
        # (through GPyTorch's constraint transforms: rounding at 1e-9)
        assert gpytorch_loss(model) == pytest.approx(point.loss, rel=1e-8)
    finally:
        put(model, values)
        fitted._finish(model)


def _as_dict(point: ProfilePoint) -> dict[str, float]:
    return {
        "lengthscale": point.lengthscale,
        "outputscale": point.outputscale,
        "noise": point.noise,
        "mean": point.mean,
    }


@pytest.mark.parametrize("name", ["lengthscale", "outputscale", "noise", "mean"])
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_search_ends_at_a_local_optimum_of_gpytorch_loss(
    fitted: EnergyGradientGP, name: str, factor: float
) -> None:
    model = fitted._require_model()
    values = scaled(model)
    optimum = gpytorch_loss(model)
    changed = dict(values)
    if name == "mean":  # mean is in scaled energy units around 0: shift it
        changed["mean"] = values["mean"] + (factor - 1.0) * math.sqrt(values["outputscale"])
    else:  # within the bounds: the optimum may sit on one
        low, high = bounds(model)[name]
        changed[name] = min(max(values[name] * factor, low), high)
        ratio = NOISE_RATIO_BOUNDS[0] * (1 + 1e-9)  # the search's bound on noise / outputscale
        changed["noise"] = max(changed["noise"], ratio * changed["outputscale"])
    put(model, changed)
    try:
        assert gpytorch_loss(model) > optimum - 1e-7
    finally:
        put(model, values)
        fitted._finish(model)


@pytest.mark.parametrize(("n_atoms", "periodic"), [(3, False), (2, False), (5, True), (1, False)])
def test_internal_basis_is_orthonormal_and_free_of_rigid_motions(
    n_atoms: int, periodic: bool
) -> None:
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(4, n_atoms, 3))
    basis = internal_gradient_basis(positions, periodic)
    kept = 3 * n_atoms - rigid_motion_count(n_atoms, periodic)
    assert basis.shape == (4, 3 * n_atoms, kept)
    for structure, columns in zip(positions, basis, strict=True):
        np.testing.assert_allclose(columns.T @ columns, np.eye(kept), atol=1e-12)
        translation = np.tile(np.eye(3), (n_atoms, 1))  # (3N, 3)
        np.testing.assert_allclose(columns.T @ translation, 0.0, atol=1e-12)
        if not periodic:
            centred = structure - structure.mean(axis=0)
            rotation = np.cross(np.eye(3)[:, None, :], centred[None]).reshape(3, -1).T
            np.testing.assert_allclose(columns.T @ rotation, 0.0, atol=1e-12)


def test_invariant_gradients_lose_nothing_in_the_internal_basis() -> None:
    positions, _, gradients = rattled_trimers(5, seed=1)  # Lennard-Jones: no net force/torque
    basis = internal_gradient_basis(positions, periodic=False)
    flat = gradients.reshape(5, -1)
    kept = np.einsum("nck,nc->nk", basis, flat)
    np.testing.assert_allclose(np.linalg.norm(kept, axis=1), np.linalg.norm(flat, axis=1))
