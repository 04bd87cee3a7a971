"""Kernel hyperparameters of a subset GP by marginal likelihood (with priors and restarts).

Targets are centred and scaled to O(1) before fitting, so the bounds and priors
below are in those units; lengthscales are relative to the median distance m
between training inputs (Å for Cartesian inputs, descriptor units for SOAP):

==============  ===================  ===============================
parameter       bounds               prior
==============  ===================  ===============================
lengthscale     [m/1000, 1000 m]     log-normal, median m, σ_log = 2
outputscale     [1e-8, 1e8]          log-normal, median 1, σ_log = 3
noise variance  [1e-10, 1e-1]        log-normal, median 1e-6, σ_log = 3
energy mean     none                 none (flat)
==============  ===================  ===============================

The search maximises the log posterior (log marginal likelihood plus log
priors) over all four. Two of them have closed forms once the other two are
fixed, so the optimiser only ever moves two. Write the kernel as
``K = s·(K₀(l) + ρ I)`` with ρ = noise / s and ``A = K₀(l) + ρ I``:

- the energy mean is the generalised least-squares estimate
  ``c = eᵀA⁻¹y / eᵀA⁻¹e`` (e marks the energy outputs), whatever s is;
- with ``q = (y - c e)ᵀA⁻¹(y - c e)`` over N outputs, the outputscale minimises
  ``q/2s + (N/2) log s - log p(s)``, a convex 1-D problem in log s (Newton).

Each trial point (l, ρ) therefore costs one kernel and one Cholesky
factorisation — no backward pass. The marginal likelihood of a GP on few
structures is multimodal in the lengthscale, so the search evaluates a coarse
grid of (l, ρ), then runs bounded Nelder–Mead in (log l, log ρ) from the best
``restarts`` grid points (distinct lengthscales, each jittered by a seeded
random factor) and keeps the best result. Points where the kernel is not
numerically positive definite count as infinitely bad; the outputscale is kept
within its own bounds and those of the noise s·ρ.

Invariant inputs (SOAP) make every structure's gradient outputs exactly zero,
in data and prior alike, along its rigid motions (6 per molecule, 3 per cell).
Left in, those directions have prior variance s·ρ only, so the likelihood grows
without bound as the noise shrinks and drags the lengthscale with it. The
search therefore takes a ``projection`` onto the remaining outputs (energy plus
internal gradient components, :func:`interphase.gpr.inputs.internal_gradient_basis`)
and evaluates the likelihood there; conditioning and prediction keep every output.

GPyTorch's ``ExactMarginalLogLikelihood`` gives the same loss at the same
hyperparameters (tested); it is not used here because a gradient step through it
costs about six times an evaluation of this profile and needs hundreds of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import gpytorch
import numpy as np
import torch
from scipy.optimize import minimize

#: Multiples of the median input distance tried as starting lengthscales.
LENGTHSCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Starting noise-to-signal ratios ρ tried (targets are scaled to O(1)).
NOISE_RATIO_GRID = (1e-8, 1e-5, 1e-2)
NOISE_BOUNDS = (1e-10, 1e-1)
OUTPUTSCALE_BOUNDS = (1e-8, 1e8)
#: Bounds of ρ = noise / outputscale in the search. Below the kernel's relative
#: nugget (1e-10) the noise no longer matters and the factorisation is at its
#: numerical limit; above, every ratio the noise and outputscale bounds allow.
NOISE_RATIO_BOUNDS = (1e-10, NOISE_BOUNDS[1] / OUTPUTSCALE_BOUNDS[0])
LENGTHSCALE_RANGE = 1e3
INITIAL_NOISE = 1e-6
#: σ_log of the log-normal priors (lengthscale around the median distance, outputscale around 1).
LENGTHSCALE_PRIOR_SIGMA = 2.0
OUTPUTSCALE_PRIOR_SIGMA = 3.0
#: Labels are nearly noise-free: the noise variance (scaled units) has a log-normal
#: prior around INITIAL_NOISE, so misfit is not explained away as noise unless the
#: data insist.
NOISE_PRIOR_SIGMA = 3.0
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


@dataclass(frozen=True)
class ProfilePoint:
    """All four hyperparameters at one (lengthscale, noise ratio), in scaled units."""

    loss: float  # −log posterior per output
    lengthscale: float
    outputscale: float
    noise: float
    mean: float


def constraints_and_priors(
    median_distance: float,
) -> dict[str, object]:
    """Keyword arguments for the kernel, scale kernel and likelihood (bounds and priors)."""
    low, high = median_distance / LENGTHSCALE_RANGE, median_distance * LENGTHSCALE_RANGE
    return {
        "lengthscale_constraint": gpytorch.constraints.Interval(low, high),
        "lengthscale_prior": gpytorch.priors.LogNormalPrior(
            math.log(median_distance), LENGTHSCALE_PRIOR_SIGMA
        ),
        "outputscale_constraint": gpytorch.constraints.Interval(*OUTPUTSCALE_BOUNDS),
        "outputscale_prior": gpytorch.priors.LogNormalPrior(0.0, OUTPUTSCALE_PRIOR_SIGMA),
        "noise_constraint": gpytorch.constraints.Interval(*NOISE_BOUNDS),
        "noise_prior": gpytorch.priors.LogNormalPrior(math.log(INITIAL_NOISE), NOISE_PRIOR_SIGMA),
    }


def _negative_log_lognormal(x_log: float, median_log: float, sigma: float) -> float:
    """−log of a log-normal density at exp(x_log) (what GPyTorch's LogNormalPrior adds)."""
    return (
        (x_log - median_log) ** 2 / (2.0 * sigma**2)
        + x_log
        + math.log(sigma * math.sqrt(2.0 * math.pi))
    )


def _best_log_outputscale(q: float, n_outputs: int, log_noise_ratio: float) -> float:
    """argmin over u = log s of the −log posterior at fixed (l, ρ), within bounds.

    q/(2s) + (N/2)u plus the log-normal priors of s (median 1) and of the noise
    s·ρ (median INITIAL_NOISE): a convex function of u, so its minimum within the
    bounds of s and of s·ρ is the clipped unconstrained one.
    """
    low = max(math.log(OUTPUTSCALE_BOUNDS[0]), math.log(NOISE_BOUNDS[0]) - log_noise_ratio)
    high = min(math.log(OUTPUTSCALE_BOUNDS[1]), math.log(NOISE_BOUNDS[1]) - log_noise_ratio)
    if q <= 0.0:
        return low
    outputscale_weight = 1.0 / OUTPUTSCALE_PRIOR_SIGMA**2
    noise_weight = 1.0 / NOISE_PRIOR_SIGMA**2
    noise_offset = log_noise_ratio - math.log(INITIAL_NOISE)
    u = min(max(math.log(q / n_outputs), low), high)
    for _ in range(100):  # convex: Newton converges in a handful of steps
        decay = 0.5 * q * math.exp(-u)
        gradient = (
            -decay
            + 0.5 * n_outputs
            + (u * outputscale_weight + 1.0)
            + ((u + noise_offset) * noise_weight + 1.0)
        )
        step = gradient / (decay + outputscale_weight + noise_weight)
        u = min(max(u - step, low), high)
        if abs(step) < 1e-12:
            break
    return u


class ProfileLikelihood:
    """−log posterior of a GP as a function of (log lengthscale, log noise ratio) alone."""

    def __init__(
        self,
        model: gpytorch.models.ExactGP,
        median_distance: float,
        projection: torch.Tensor | None = None,
    ) -> None:
        self.kernel = model.covar_module.base_kernel
        self.train_x = model.train_inputs[0]
        self.projection = projection  # (n, T', T): outputs kept per structure
        targets = model.train_targets  # (n, T), energy first
        energy_indicator = torch.zeros_like(targets)
        energy_indicator[:, 0] = 1.0
        if projection is not None:
            targets = torch.einsum("nkt,nt->nk", projection, targets)
            energy_indicator = torch.einsum("nkt,nt->nk", projection, energy_indicator)
        self.n_outputs = targets.numel()
        self.median_log = math.log(median_distance)
        self.right_hand_sides = torch.stack([targets.reshape(-1), energy_indicator.reshape(-1)], 1)
        self.evaluations = 0

    def _kernel(self) -> torch.Tensor:
        """K₀ at the current lengthscale, on the kept outputs (n·T', n·T')."""
        matrix = self.kernel(self.train_x).to_dense()
        if self.projection is None:
            return matrix
        p = self.projection
        n, kept, width = p.shape
        blocks = torch.einsum("iat,itjs->iajs", p, matrix.reshape(n, width, n, width))
        del matrix  # at most two kernel-sized tensors at a time
        return torch.einsum("iajs,jbs->iajb", blocks, p).reshape(n * kept, n * kept)

    def point(self, log_lengthscale: float, log_noise_ratio: float) -> ProfilePoint:
        """Best outputscale and mean at (l, ρ), and the loss there (inf if infeasible)."""
        self.evaluations += 1
        infeasible = ProfilePoint(math.inf, math.exp(log_lengthscale), 1.0, INITIAL_NOISE, 0.0)
        with torch.no_grad():
            self.kernel.lengthscale = self._scalar(math.exp(log_lengthscale))
            matrix = self._kernel()
            matrix.diagonal().add_(math.exp(log_noise_ratio))
            cholesky, info = torch.linalg.cholesky_ex(matrix)
            del matrix
            if int(info) != 0:  # not numerically positive definite here
                return infeasible
            solved = torch.cholesky_solve(self.right_hand_sides, cholesky)
            y, e = self.right_hand_sides[:, 0], self.right_hand_sides[:, 1]
            y_solved, e_solved = solved[:, 0], solved[:, 1]
            mean = float(e @ y_solved) / float(e @ e_solved)
            q = float(y @ y_solved) - mean * float(e @ y_solved)
            log_determinant = 2.0 * float(torch.log(cholesky.diagonal()).sum())
        n = self.n_outputs
        log_outputscale = _best_log_outputscale(q, n, log_noise_ratio)
        outputscale = math.exp(log_outputscale)
        noise = outputscale * math.exp(log_noise_ratio)
        if not math.isfinite(q):
            return infeasible
        negative_log_likelihood = 0.5 * (
            q / outputscale + n * log_outputscale + log_determinant + n * math.log(2.0 * math.pi)
        )
        negative_log_prior = (
            _negative_log_lognormal(log_outputscale, 0.0, OUTPUTSCALE_PRIOR_SIGMA)
            + _negative_log_lognormal(log_lengthscale, self.median_log, LENGTHSCALE_PRIOR_SIGMA)
            + _negative_log_lognormal(
                log_outputscale + log_noise_ratio, math.log(INITIAL_NOISE), NOISE_PRIOR_SIGMA
            )
        )
        loss = (negative_log_likelihood + negative_log_prior) / n
        return ProfilePoint(loss, math.exp(log_lengthscale), outputscale, noise, mean)

    def __call__(self, theta: np.ndarray) -> float:
        return self.point(float(theta[0]), float(theta[1])).loss

    def _scalar(self, value: float) -> torch.Tensor:
        like = self.train_x
        return torch.tensor(value, dtype=like.dtype, device=like.device)


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
    kernel = model.covar_module.base_kernel
    kernel.cache_geometry = True
    profile = ProfileLikelihood(model, median_distance, projection)
    bounds = _bounds(median_distance)
    try:
        starts = _grid_starts(profile, median_distance, max(1, restarts))
        search = HyperparameterSearch(grid_best_loss=starts[0].loss)
        best = starts[0]
        tolerance = _LOG_POSTERIOR_TOLERANCE / profile.n_outputs  # the loss is per output
        generator = np.random.default_rng(seed)
        for index, start in enumerate(starts):
            point = start
            if iterations > 0 and math.isfinite(start.loss):
                theta = np.log([start.lengthscale, start.noise / start.outputscale])
                theta = theta + 0.2 * generator.standard_normal(2)
                theta = np.clip(theta, [b[0] for b in bounds], [b[1] for b in bounds])
                result = minimize(
                    profile,
                    theta,
                    method="Nelder-Mead",
                    bounds=bounds,
                    options={"maxiter": iterations, "xatol": _LOG_TOLERANCE, "fatol": tolerance},
                )
                refined = profile.point(float(result.x[0]), float(result.x[1]))
                point = refined if refined.loss < start.loss else start
            search.restart_losses.append(point.loss)
            if point.loss < best.loss or index == 0:
                best, search.best_restart = point, index
        search.evaluations = profile.evaluations
    finally:
        kernel.cache_geometry = False
        kernel.clear_cache()
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
    kernel = model.covar_module.base_kernel
    kernel.cache_geometry = True
    profile = ProfileLikelihood(model, median_distance, projection)
    bounds = _bounds(median_distance)
    try:
        theta = np.log([start.lengthscale, start.noise / start.outputscale])
        theta = np.clip(theta, [b[0] for b in bounds], [b[1] for b in bounds])
        best = profile.point(float(theta[0]), float(theta[1]))
        if iterations > 0 and math.isfinite(best.loss):
            result = minimize(
                profile,
                theta,
                method="Nelder-Mead",
                bounds=bounds,
                options={
                    "maxiter": iterations,
                    "xatol": _LOG_TOLERANCE,
                    "fatol": _LOG_POSTERIOR_TOLERANCE / profile.n_outputs,
                },
            )
            refined = profile.point(float(result.x[0]), float(result.x[1]))
            best = refined if refined.loss < best.loss else best
    finally:
        kernel.cache_geometry = False
        kernel.clear_cache()
    set_scaled_hyperparameters(model, best)
    return best.loss, profile.evaluations


def current_point(model: gpytorch.models.ExactGP) -> ProfilePoint:
    """The model's hyperparameters (scaled units) as a start for :func:`refine_hyperparameters`."""
    return ProfilePoint(
        loss=math.nan,
        lengthscale=model.covar_module.base_kernel.lengthscale.item(),
        outputscale=model.covar_module.outputscale.item(),
        noise=model.likelihood.noise.item(),
        mean=model.mean_module.constant.item(),
    )


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


def set_scaled_hyperparameters(model: gpytorch.models.ExactGP, point: ProfilePoint) -> None:
    """Put ``point`` (scaled units) into ``model``, just inside the constraints' bounds."""

    def inside(value: float, constraint: gpytorch.constraints.Interval) -> torch.Tensor:
        low, high = float(constraint.lower_bound), float(constraint.upper_bound)
        clipped = min(max(value, low * (1 + 1e-9)), high * (1 - 1e-9))
        # Tensors, not floats: gpytorch converts a float through float32.
        like = model.covar_module.raw_outputscale
        return torch.tensor(clipped, dtype=like.dtype, device=like.device)

    scale_kernel = model.covar_module
    base = scale_kernel.base_kernel
    with torch.no_grad():
        base.lengthscale = inside(point.lengthscale, base.raw_lengthscale_constraint)
        scale_kernel.outputscale = inside(
            point.outputscale, scale_kernel.raw_outputscale_constraint
        )
        model.likelihood.noise = inside(point.noise, model.likelihood.raw_noise_constraint)
        model.mean_module.constant.fill_(point.mean)
