"""Kernel hyperparameters of a subset GP by marginal likelihood (with priors and restarts).

The loss, its bounds and priors, and why each trial point costs only one
Cholesky factorisation are in :mod:`interphase.gpr.likelihood`: the energy mean
and the outputscale have closed forms, so the search moves only the lengthscale
l and the noise ratio ρ. The marginal likelihood of a GP on few structures is
multimodal in the lengthscale, so the search evaluates a coarse grid of (l, ρ),
then runs bounded Nelder–Mead in (log l, log ρ) from the best ``restarts`` grid
points (distinct lengthscales, each jittered by a seeded random factor) and
keeps the best result. Points where the kernel is not numerically positive
definite count as infinitely bad. :func:`refine_hyperparameters` continues a
search on more data (one Nelder–Mead run from its result), which
:func:`search_hyperparameters` uses for large samples (the search
:meth:`interphase.gpr.gp.EnergyGradientGP.fit` runs). Hyperparameters are
searched in units scaled by the subset's energy scale;
:mod:`interphase.gpr.hyperparameter_values` reads and sets them, in those
units or in Hartree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gpytorch
import numpy as np
import torch
from scipy.optimize import minimize

from interphase.gpr.hyperparameter_values import current_point, set_scaled_hyperparameters
from interphase.gpr.inputs import MIN_TRAINING_STRUCTURES
from interphase.gpr.likelihood import (
    INITIAL_NOISE,
    LENGTHSCALE_RANGE,
    NOISE_BOUNDS,
    OUTPUTSCALE_BOUNDS,
    ProfileLikelihood,
    ProfilePoint,
)
from interphase.gpr.memory import farthest_point_indices

#: Multiples of the median input distance tried as starting lengthscales.
LENGTHSCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Starting noise-to-signal ratios ρ tried (targets are scaled to O(1)).
NOISE_RATIO_GRID = (1e-8, 1e-5, 1e-2)
#: Bounds of ρ = noise / outputscale in the search. Below the kernel's relative
#: nugget (1e-10) the noise no longer matters and the factorisation is at its
#: numerical limit; above, every ratio the noise and outputscale bounds allow.
NOISE_RATIO_BOUNDS = (1e-10, NOISE_BOUNDS[1] / OUTPUTSCALE_BOUNDS[0])
#: Nelder–Mead stops when the simplex spans less than this in log l and log ρ (1 %)
#: and its losses differ by less than _LOG_POSTERIOR_TOLERANCE (nats, whole data set).
_LOG_TOLERANCE = 1e-2
_LOG_POSTERIOR_TOLERANCE = 1e-3


@dataclass
class HyperparameterSearch:
    """What the search did: the loss (−log posterior per output) of each restart.

    A coarse-to-fine search (:meth:`EnergyGradientGP.fit` on a large hyperparameter
    sample) runs the grid and restarts on a small sample, then ``refined_loss`` is
    that of one more Nelder–Mead run on the whole sample.
    """

    grid_best_loss: float
    restart_losses: list[float] = field(default_factory=list)
    best_restart: int = 0
    #: Likelihood evaluations (one Cholesky factorisation each), grid included.
    evaluations: int = 0
    refined_loss: float | None = None

    @property
    def final_loss(self) -> float:
        """The loss at the hyperparameters the search set."""
        if self.refined_loss is not None:
            return self.refined_loss
        return self.restart_losses[self.best_restart] if self.restart_losses else math.inf


def optimise_hyperparameters(
    model: gpytorch.models.ExactGP,
    *,
    median_distance: float,
    iterations: int,
    restarts: int,
    seed: int,
    projection: torch.Tensor | None = None,
) -> HyperparameterSearch:
    """Maximise the marginal likelihood (plus priors) of ``model`` and set its hyperparameters.

    Parameters
    ----------
    model
        ExactGP with ``covar_module`` a ScaleKernel over the gradient SE kernel, a
        Gaussian likelihood and the constant energy mean.
    median_distance
        Median distance between training inputs (sets the lengthscale grid).
    iterations
        Nelder–Mead iterations per restart (0: keep the best grid point).
    restarts
        Nelder–Mead runs from the best grid points (at least 1).
    seed
        Seed of the start jitter.
    projection
        (n, T', T) per-structure map onto the outputs the likelihood is evaluated
        on (for invariant inputs: energy and internal gradient components); ``None``
        keeps all T outputs.
    """
    with _geometry_cached(model):
        profile = ProfileLikelihood(model, median_distance, projection)
        bounds = _bounds(median_distance)
        starts = _grid_starts(profile, median_distance, max(1, restarts))
        search = HyperparameterSearch(grid_best_loss=starts[0].loss)
        best = starts[0]
        generator = np.random.default_rng(seed)
        for index, start in enumerate(starts):
            point = start
            if iterations > 0 and math.isfinite(start.loss):
                theta = _log_theta(start) + 0.2 * generator.standard_normal(2)
                point = _nelder_mead(profile, theta, start, bounds, iterations)
            search.restart_losses.append(point.loss)
            if point.loss < best.loss or index == 0:
                best, search.best_restart = point, index
        search.evaluations = profile.evaluations
    set_scaled_hyperparameters(model, best)
    return search


def refine_hyperparameters(
    model: gpytorch.models.ExactGP,
    start: ProfilePoint,
    *,
    median_distance: float,
    iterations: int,
    projection: torch.Tensor | None = None,
) -> tuple[float, int]:
    """One Nelder–Mead run from ``start`` (scaled units) on ``model``'s data; sets the result.

    Returns the loss there and the number of likelihood evaluations.
    """
    with _geometry_cached(model):
        profile = ProfileLikelihood(model, median_distance, projection)
        bounds = _bounds(median_distance)
        theta = _clip(_log_theta(start), bounds)
        best = profile.point(float(theta[0]), float(theta[1]))
        if iterations > 0 and math.isfinite(best.loss):
            best = _nelder_mead(profile, theta, best, bounds, iterations)
    set_scaled_hyperparameters(model, best)
    return best.loss, profile.evaluations


def search_hyperparameters(
    new_model: Callable[[torch.Tensor, torch.Tensor], gpytorch.models.ExactGP],
    x: torch.Tensor,
    y: torch.Tensor,
    fps_inputs: np.ndarray,
    *,
    max_outputs: int,
    coarse_outputs: int,
    median_distance: float,
    iterations: int,
    restarts: int,
    seed: int,
    projection: Callable[[np.ndarray], torch.Tensor | None],
) -> tuple[gpytorch.models.ExactGP, HyperparameterSearch, int]:
    """Hyperparameters on at most ``max_outputs`` outputs, coarse to fine when many.

    Above ``max_outputs`` the search runs on a farthest-point sample of the
    structures. The grid and restarts run on a farthest-point sample of at most
    ``coarse_outputs`` outputs; one Nelder–Mead run on the whole sample then
    refines their result (each of its steps costs more). ``new_model(x, y)``
    builds a model on some rows; ``projection(rows)`` is the likelihood
    projection of those rows (see :func:`optimise_hyperparameters`).
    Returns the model on all of ``x``, ``y`` with the hyperparameters set, the
    search, and the number of structures it ran on.
    """
    subset = _farthest_sample(fps_inputs, np.arange(len(x)), max_outputs, y.shape[1])
    coarse = _farthest_sample(fps_inputs, subset, coarse_outputs, y.shape[1])
    index = torch.as_tensor(coarse, device=x.device)
    model = new_model(x[index], y[index])
    search = optimise_hyperparameters(
        model,
        median_distance=median_distance,
        iterations=iterations,
        restarts=restarts,
        seed=seed,
        projection=projection(coarse),
    )
    if len(coarse) < len(subset):
        start = current_point(model)
        index = torch.as_tensor(subset, device=x.device)
        model = new_model(x[index], y[index])
        loss, evaluations = refine_hyperparameters(
            model,
            start,
            median_distance=median_distance,
            iterations=iterations,
            projection=projection(subset),
        )
        search.refined_loss = loss
        search.evaluations += evaluations
    if len(subset) < len(x):
        model.set_train_data(x, y, strict=False)
    return model, search, len(subset)


def _farthest_sample(
    fps_inputs: np.ndarray, rows: np.ndarray, max_outputs: int, outputs_per_structure: int
) -> np.ndarray:
    """``rows``, or a farthest-point sample of them when they exceed ``max_outputs``."""
    limit = max(MIN_TRAINING_STRUCTURES, max_outputs // outputs_per_structure)
    if len(rows) <= limit:
        return rows
    return rows[farthest_point_indices(fps_inputs[rows], limit)]


@contextmanager
def _geometry_cached(model: gpytorch.models.ExactGP) -> Iterator[None]:
    """Keep the kernel's lengthscale-free geometry while one search runs."""
    kernel = model.covar_module.base_kernel
    kernel.cache_geometry = True
    try:
        yield
    finally:
        kernel.cache_geometry = False
        kernel.clear_cache()


def _log_theta(point: ProfilePoint) -> np.ndarray:
    """(log lengthscale, log noise ratio) of a point."""
    return np.log([point.lengthscale, point.noise / point.outputscale])


def _clip(theta: np.ndarray, bounds: list[tuple[float, float]]) -> np.ndarray:
    return np.clip(theta, [b[0] for b in bounds], [b[1] for b in bounds])


def _nelder_mead(
    profile: ProfileLikelihood,
    theta: np.ndarray,
    start: ProfilePoint,
    bounds: list[tuple[float, float]],
    iterations: int,
) -> ProfilePoint:
    """Bounded Nelder–Mead in (log l, log ρ) from ``theta``; the better of its end and ``start``."""
    result = minimize(
        profile,
        _clip(theta, bounds),
        method="Nelder-Mead",
        bounds=bounds,
        options={
            "maxiter": iterations,
            "xatol": _LOG_TOLERANCE,
            "fatol": _LOG_POSTERIOR_TOLERANCE / profile.n_outputs,  # the loss is per output
        },
    )
    end = profile.point(float(result.x[0]), float(result.x[1]))
    return end if end.loss < start.loss else start


def _bounds(median_distance: float) -> list[tuple[float, float]]:
    """Bounds of (log lengthscale, log noise ratio ρ); see :data:`NOISE_RATIO_BOUNDS`."""
    return [
        (
            math.log(median_distance / LENGTHSCALE_RANGE),
            math.log(median_distance * LENGTHSCALE_RANGE),
        ),
        (math.log(NOISE_RATIO_BOUNDS[0]), math.log(NOISE_RATIO_BOUNDS[1])),
    ]


def _grid_starts(
    profile: ProfileLikelihood, median_distance: float, restarts: int
) -> list[ProfilePoint]:
    """The ``restarts`` best grid points, one per lengthscale, best first."""
    points = [
        profile.point(math.log(factor * median_distance), math.log(ratio))
        for factor in LENGTHSCALE_FACTORS
        for ratio in NOISE_RATIO_GRID
    ]
    feasible = sorted((p for p in points if math.isfinite(p.loss)), key=lambda p: p.loss)
    if not feasible:
        return [ProfilePoint(math.inf, median_distance, 1.0, INITIAL_NOISE, 0.0)]
    best_per_lengthscale: dict[float, ProfilePoint] = {}
    for point in feasible:
        best_per_lengthscale.setdefault(point.lengthscale, point)
    return sorted(best_per_lengthscale.values(), key=lambda p: p.loss)[:restarts]
