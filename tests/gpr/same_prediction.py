"""Comparing two predictions of the same GP made along different code paths."""

from __future__ import annotations

from typing import Any

import numpy as np

#: A restored GP refactorises its kernel (and a fitted one may have factorised it
#: during the hyperparameter search, blocked differently): the same numbers to
#: float64 round-off, amplified a little by the kernel's conditioning, not bit for bit.
RTOL = 1e-9
ATOL_HARTREE = 1e-12


def assert_same_prediction(a: Any, b: Any, *, gradients: bool = True) -> None:
    """Energies, energy stds and (optionally) gradients agree to round-off."""
    np.testing.assert_allclose(a.energy_hartree, b.energy_hartree, rtol=RTOL, atol=ATOL_HARTREE)
    np.testing.assert_allclose(
        a.energy_std_hartree, b.energy_std_hartree, rtol=RTOL, atol=ATOL_HARTREE
    )
    if gradients:
        np.testing.assert_allclose(
            a.gradient_hartree_per_angstrom,
            b.gradient_hartree_per_angstrom,
            rtol=RTOL,
            atol=ATOL_HARTREE,
        )
