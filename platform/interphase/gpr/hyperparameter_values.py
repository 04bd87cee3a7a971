"""The hyperparameters held by a subset GP's model, read and set in scaled or physical units.

The search (:mod:`interphase.gpr.hyperparameters`) works in units scaled by
the subset's energy scale; the GP reports and accepts them in Hartree: energy
variances in Hartree² (the gradient noise variance is the same number in
(Hartree/Å)²), the mean in Hartree, the lengthscale in the input's units.
"""

from __future__ import annotations

import math

import gpytorch
import torch

from interphase.gpr.errors import GPInputError
from interphase.gpr.likelihood import ProfilePoint


def current_point(model: gpytorch.models.ExactGP) -> ProfilePoint:
    """The model's hyperparameters (scaled units) as a start for :func:`refine_hyperparameters`."""
    return ProfilePoint(
        loss=math.nan,
        lengthscale=model.covar_module.base_kernel.lengthscale.item(),
        outputscale=model.covar_module.outputscale.item(),
        noise=model.likelihood.noise.item(),
        mean=model.mean_module.constant.item(),
    )


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


def physical_hyperparameters(
    model: gpytorch.models.ExactGP, lengthscale_key: str, scale: float, offset: float
) -> dict[str, float]:
    """``model``'s hyperparameters in physical units (energies scaled by ``scale`` Hartree).

    ``offset`` (Hartree) is the energy the targets were centred on.
    """
    return {
        lengthscale_key: float(model.covar_module.base_kernel.lengthscale.item()),
        "outputscale_hartree2": float(model.covar_module.outputscale.item()) * scale**2,
        "noise_hartree2": float(model.likelihood.noise.item()) * scale**2,
        "mean_hartree": float(model.mean_module.constant.item()) * scale + offset,
    }


def set_physical_hyperparameters(
    model: gpytorch.models.ExactGP,
    values: dict[str, float],
    lengthscale_key: str,
    scale: float,
    offset: float,
    *,
    clip: bool = True,
) -> None:
    """Set physical hyperparameters (as :func:`physical_hyperparameters` gives them) on ``model``.

    Values outside the model's bounds are clipped, or refused with ``clip=False``.

    Raises
    ------
    GPInputError
        With ``clip=False``: a value outside its bounds.
    """
    scaled = {
        "lengthscale": values[lengthscale_key],
        "outputscale": values["outputscale_hartree2"] / scale**2,
        "noise": values["noise_hartree2"] / scale**2,
    }
    constraints = {
        "lengthscale": model.covar_module.base_kernel.raw_lengthscale_constraint,
        "outputscale": model.covar_module.raw_outputscale_constraint,
        "noise": model.likelihood.raw_noise_constraint,
    }
    for name, constraint in constraints.items():
        low, high = float(constraint.lower_bound), float(constraint.upper_bound)
        if not clip and not low < scaled[name] < high:
            raise GPInputError(
                f"{name} {scaled[name]:.3g} (in units scaled by the energy scale "
                f"{scale:.3g} Hartree) is outside its bounds ({low:.3g}, {high:.3g})"
            )
    mean = (values["mean_hartree"] - offset) / scale
    set_scaled_hyperparameters(model, ProfilePoint(math.nan, mean=mean, **scaled))


def overridden_hyperparameters(
    values: dict[str, float], overrides: dict[str, float | None]
) -> dict[str, float]:
    """``values`` with the ``overrides`` that are not ``None``, each checked positive.

    Raises
    ------
    GPInputError
        An override that is not positive, named by its key.
    """
    merged = dict(values)
    for key, value in overrides.items():
        if value is not None:
            if not value > 0:
                raise GPInputError(f"{key} must be positive; got {value}")
            merged[key] = value
    return merged
