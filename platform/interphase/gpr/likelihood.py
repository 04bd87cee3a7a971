"""The profiled posterior of a subset GP's hyperparameters: bounds, priors, one trial point.

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

The loss is the log posterior (log marginal likelihood plus log priors) per
output. Two of the four hyperparameters have closed forms once the other two are
fixed. Write the kernel as ``K = s·(K₀(l) + ρ I)`` with ρ = noise / s and
``A = K₀(l) + ρ I``:

- the energy mean is the generalised least-squares estimate
  ``c = eᵀA⁻¹y / eᵀA⁻¹e`` (e marks the energy outputs), whatever s is;
- with ``q = (y - c e)ᵀA⁻¹(y - c e)`` over N outputs, the outputscale minimises
  ``q/2s + (N/2) log s`` plus its prior and the noise's, a convex 1-D problem in
  log s (Newton), kept within the bounds of s and of the noise s·ρ.

Each trial point (l, ρ) therefore costs one kernel and one Cholesky
factorisation — no backward pass. GPyTorch's ``ExactMarginalLogLikelihood``
gives the same loss at the same hyperparameters (tested); a gradient step
through it costs about six times one such point, and a search needs hundreds.

Invariant inputs (SOAP) make every structure's gradient outputs exactly zero,
in data and prior alike, along its rigid motions (6 per molecule, 3 per cell).
Left in, those directions have prior variance s·ρ only, so the likelihood grows
without bound as the noise shrinks and drags the lengthscale with it.
:class:`ProfileLikelihood` therefore takes a ``projection`` onto the remaining
outputs (energy plus internal gradient components,
:func:`interphase.gpr.inputs.internal_gradient_basis`); conditioning and
prediction keep every output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gpytorch
import numpy as np
import torch

NOISE_BOUNDS = (1e-10, 1e-1)
OUTPUTSCALE_BOUNDS = (1e-8, 1e8)
LENGTHSCALE_RANGE = 1e3
INITIAL_NOISE = 1e-6
#: σ_log of the log-normal priors (lengthscale around the median distance, outputscale around 1).
LENGTHSCALE_PRIOR_SIGMA = 2.0
OUTPUTSCALE_PRIOR_SIGMA = 3.0
#: Labels are nearly noise-free: the noise variance (scaled units) has a log-normal
#: prior around INITIAL_NOISE, so misfit is not explained away as noise unless the
#: data insist.
NOISE_PRIOR_SIGMA = 3.0


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
        if not math.isfinite(q):
            return infeasible
        n = self.n_outputs
        log_outputscale = _best_log_outputscale(q, n, log_noise_ratio)
        outputscale = math.exp(log_outputscale)
        noise = outputscale * math.exp(log_noise_ratio)
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
