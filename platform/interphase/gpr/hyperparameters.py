"""Kernel hyperparameters of a subset GP by marginal likelihood (with priors and restarts).

Targets are centred and scaled to O(1) before fitting, so the bounds and priors
below are in those units; lengthscales are relative to the median distance m
between training inputs (Å for Cartesian inputs, descriptor units for SOAP):

==============  ===================  ===============================
parameter       bounds               prior
==============  ===================  ===============================
lengthscale     [m/1000, 1000 m]     log-normal, median m, σ_log = 2
outputscale     [1e-8, 1e8]          log-normal, median 1, σ_log = 3
noise variance  [1e-10, 1e-1]        none (labels are nearly noise-free)
==============  ===================  ===============================

The marginal likelihood of a GP on few structures is multimodal in the
lengthscale, so the search starts from a coarse grid (evaluated without
gradients, cheap once the kernel geometry is cached), then runs Adam from the
best ``restarts`` grid points, each jittered by a seeded random factor, and keeps
the restart with the highest posterior (likelihood + priors).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import gpytorch
import torch
from linear_operator.utils.errors import NotPSDError

#: A kernel that is not numerically positive definite at some trial point.
_BREAKDOWN = (NotPSDError, torch.linalg.LinAlgError)

#: Multiples of the median input distance tried as starting lengthscales.
LENGTHSCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Starting outputscales tried (targets are scaled to O(1)).
OUTPUTSCALE_GRID = (0.1, 1.0, 10.0, 100.0)
NOISE_BOUNDS = (1e-10, 1e-1)
OUTPUTSCALE_BOUNDS = (1e-8, 1e8)
LENGTHSCALE_RANGE = 1e3
INITIAL_NOISE = 1e-6


@dataclass
class HyperparameterSearch:
    """What the search did: the loss (−log posterior per output) of each restart."""

    grid_best_loss: float
    restart_losses: list[float] = field(default_factory=list)
    best_restart: int = 0


def constraints_and_priors(
    median_distance: float,
) -> dict[str, object]:
    """Keyword arguments for the kernel, scale kernel and likelihood (bounds and priors)."""
    low, high = median_distance / LENGTHSCALE_RANGE, median_distance * LENGTHSCALE_RANGE
    return {
        "lengthscale_constraint": gpytorch.constraints.Interval(low, high),
        "lengthscale_prior": gpytorch.priors.LogNormalPrior(math.log(median_distance), 2.0),
        "outputscale_constraint": gpytorch.constraints.Interval(*OUTPUTSCALE_BOUNDS),
        "outputscale_prior": gpytorch.priors.LogNormalPrior(0.0, 3.0),
        "noise_constraint": gpytorch.constraints.Interval(*NOISE_BOUNDS),
    }


def optimise_hyperparameters(
    model: gpytorch.models.ExactGP,
    *,
    median_distance: float,
    iterations: int,
    restarts: int,
    learning_rate: float,
    seed: int,
) -> HyperparameterSearch:
    """Maximise the marginal likelihood (plus priors) of ``model`` in place.

    Parameters
    ----------
    model
        ExactGP with ``covar_module`` a ScaleKernel and a Gaussian likelihood.
    median_distance
        Median distance between training inputs (sets the lengthscale grid).
    iterations
        Adam steps per restart.
    restarts
        Adam runs from the best grid points (at least 1).
    learning_rate
        Adam learning rate on the raw (constrained) parameters.
    seed
        Seed of the start jitter.
    """
    likelihood = model.likelihood
    model.train()
    likelihood.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    train_x, train_y = model.train_inputs[0], model.train_targets
    kernel = model.covar_module.base_kernel
    kernel.cache_geometry = True
    try:
        starts = _grid_starts(model, mll, median_distance, max(1, restarts))
        search = HyperparameterSearch(grid_best_loss=starts[0][0])
        generator = torch.Generator().manual_seed(seed)
        best_state: dict[str, torch.Tensor] | None = None
        best_loss = math.inf
        for index, (_, lengthscale, outputscale) in enumerate(starts):
            jitter = torch.exp(0.2 * torch.randn(2, generator=generator, dtype=torch.float64))
            _set(model, lengthscale * float(jitter[0]), outputscale * float(jitter[1]))
            likelihood.noise = INITIAL_NOISE
            model.mean_module.constant.data.zero_()
            loss = _adam(model, mll, train_x, train_y, iterations, learning_rate)
            search.restart_losses.append(loss)
            if loss < best_loss:
                best_loss, search.best_restart = loss, index
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if best_state is None:  # every restart broke down: keep the best grid point
            _set(model, starts[0][1], starts[0][2])
            likelihood.noise = INITIAL_NOISE
        else:
            model.load_state_dict(best_state)
    finally:
        kernel.cache_geometry = False
        kernel.clear_cache()
    return search


def _set(model: gpytorch.models.ExactGP, lengthscale: float, outputscale: float) -> None:
    kernel = model.covar_module
    low, high = (
        kernel.base_kernel.raw_lengthscale_constraint.lower_bound.item(),
        (kernel.base_kernel.raw_lengthscale_constraint.upper_bound.item()),
    )
    # Tensors, not floats: gpytorch converts a float through float32.
    like = kernel.raw_outputscale
    kernel.base_kernel.lengthscale = torch.tensor(
        min(max(lengthscale, low * 1.01), high * 0.99), dtype=like.dtype, device=like.device
    )
    kernel.outputscale = torch.tensor(
        min(max(outputscale, OUTPUTSCALE_BOUNDS[0] * 1.01), OUTPUTSCALE_BOUNDS[1] * 0.99),
        dtype=like.dtype,
        device=like.device,
    )


def _loss(
    model: gpytorch.models.ExactGP,
    mll: gpytorch.mlls.ExactMarginalLogLikelihood,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
) -> torch.Tensor:
    return -mll(model(train_x), train_y)


def _grid_starts(
    model: gpytorch.models.ExactGP,
    mll: gpytorch.mlls.ExactMarginalLogLikelihood,
    median_distance: float,
    restarts: int,
) -> list[tuple[float, float, float]]:
    """The ``restarts`` best grid points (loss, lengthscale, outputscale), distinct lengthscales."""
    train_x, train_y = model.train_inputs[0], model.train_targets
    points = []
    with torch.no_grad():
        for factor, outputscale in itertools.product(LENGTHSCALE_FACTORS, OUTPUTSCALE_GRID):
            _set(model, factor * median_distance, outputscale)
            model.likelihood.noise = INITIAL_NOISE
            try:
                loss = float(_loss(model, mll, train_x, train_y))
            except _BREAKDOWN:  # not positive definite at this point
                continue
            if math.isfinite(loss):
                points.append((loss, factor * median_distance, outputscale))
    if not points:
        return [(math.inf, median_distance, 1.0)]
    best_per_lengthscale: dict[float, tuple[float, float, float]] = {}
    for point in sorted(points):
        best_per_lengthscale.setdefault(point[1], point)
    return sorted(best_per_lengthscale.values())[:restarts]


def _adam(
    model: gpytorch.models.ExactGP,
    mll: gpytorch.mlls.ExactMarginalLogLikelihood,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    iterations: int,
    learning_rate: float,
) -> float:
    """Adam on the negative log posterior; returns the final loss (inf if it broke down)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for _ in range(iterations):
        optimiser.zero_grad()
        try:
            loss = _loss(model, mll, train_x, train_y)
        except _BREAKDOWN:
            return math.inf
        if not torch.isfinite(loss):
            return math.inf
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        try:
            return float(_loss(model, mll, train_x, train_y))
        except _BREAKDOWN:
            return math.inf
