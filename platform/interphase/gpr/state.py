"""The state of a fitted subset GP: all :meth:`EnergyGradientGP.from_state` needs.

:meth:`interphase.gpr.gp.EnergyGradientGP.state` gives it, ``from_state``
rebuilds the GP from it by conditioning on the same data with the same
hyperparameters (no refitting), and :mod:`interphase.gpr.persistence` writes it
as bytes. Units: positions Å, energies Hartree, gradients Hartree/Å (dE/dx).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from interphase.gpr.descriptors import DescriptorSettings

#: Fields of :class:`GPState` that are the GP's constructor settings (same names).
GP_SETTINGS = (
    "numbers",
    "periodic",
    "pbc",
    "descriptor",
    "training_iterations",
    "seed",
    "max_outputs",
    "max_hyperparameter_outputs",
    "restarts",
)


@dataclass(frozen=True)
class GPState:
    """Settings, training data and fitted GPyTorch state of one subset GP.

    The arrays may share memory with the GP that gave them; treat them as read-only.
    """

    numbers: np.ndarray  # (N,)
    periodic: bool
    pbc: tuple[bool, bool, bool]
    descriptor: DescriptorSettings
    training_iterations: int
    seed: int
    max_outputs: int
    max_hyperparameter_outputs: int
    restarts: int
    positions_angstrom: np.ndarray  # (n, N, 3)
    energies_hartree: np.ndarray  # (n,)
    gradients_hartree_per_angstrom: np.ndarray  # (n, N, 3), dE/dx
    cells_angstrom: np.ndarray | None  # (n, 3, 3), periodic SOAP only
    #: GPyTorch ``state_dict`` of the fitted model, on CPU (scaled units).
    model_state: dict[str, torch.Tensor]
