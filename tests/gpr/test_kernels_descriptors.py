"""The derivative kernel against GPyTorch and autograd; SOAP Jacobians by finite differences."""

from __future__ import annotations

import sys

import gpytorch
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from interphase.gpr import kernels
from interphase.gpr.descriptors import (
    DescriptorSettings,
    SoapMissingError,
    soap_feature_count,
    soap_with_jacobian,
)
from interphase.gpr.kernels import GradientSEKernel

SOAP = DescriptorSettings(kind="soap", n_max=3, l_max=2)


def test_cartesian_kernel_equals_gpytorch_rbf_kernel_grad() -> None:
    generator = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    x2 = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    reference = gpytorch.kernels.RBFKernelGrad().double()
    ours = GradientSEKernel(6).double()
    reference.lengthscale = ours.lengthscale = 1.3
    with torch.no_grad():
        expected = reference(x1, x2).to_dense()
        # Two implementations of the same formula: equal to float64 round-off.
        torch.testing.assert_close(ours(x1, x2).to_dense(), expected, atol=1e-14, rtol=1e-12)
        torch.testing.assert_close(
            ours(x1, x1, diag=True), ours(x1, x1).to_dense().diagonal(), atol=1e-14, rtol=1e-12
        )


def test_descriptor_kernel_is_the_derivative_of_the_energy_kernel() -> None:
    """With D(x) = tanh(Ax), every block equals autograd derivatives of exp(-|ΔD|²/2l²)."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    x1 = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    x2 = torch.randn(2, 6, generator=generator, dtype=torch.float64)

    def descriptor(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a @ x)

    def row(x: torch.Tensor) -> torch.Tensor:
        jacobian = torch.autograd.functional.jacobian(descriptor, x)
        return torch.cat([descriptor(x), jacobian.reshape(-1)])

    kernel = GradientSEKernel(6, n_features=5).double()
    kernel.lengthscale = torch.tensor(0.9, dtype=torch.float64)  # a float goes through float32
    with torch.no_grad():
        ours = kernel(torch.stack([row(x) for x in x1]), torch.stack([row(x) for x in x2]))
        ours = ours.to_dense()

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((descriptor(x) - descriptor(y)) ** 2).sum() / (2 * 0.9**2))

    expected = torch.zeros(3 * 7, 2 * 7, dtype=torch.float64)

    def pair(uv: torch.Tensor) -> torch.Tensor:
        return k(uv[:6], uv[6:])

    for i, x in enumerate(x1):
        for j, y in enumerate(x2):
            xy = torch.cat([x, y])
            gradient = torch.autograd.functional.jacobian(pair, xy)
            block = expected[i * 7 : (i + 1) * 7, j * 7 : (j + 1) * 7]
            block[0, 0] = pair(xy)
            block[0, 1:] = gradient[6:]
            block[1:, 0] = gradient[:6]
            block[1:, 1:] = torch.autograd.functional.hessian(pair, xy)[:6, 6:]
    torch.testing.assert_close(ours, expected, atol=1e-14, rtol=1e-10)


def finite_difference_jacobian(numbers, positions, settings, **periodic):  # type: ignore[no-untyped-def]
    step = 1e-5
    columns = []
    for c in range(positions.size):
        plus, minus = positions.copy(), positions.copy()
        plus.flat[c] += step
        minus.flat[c] -= step
        up = soap_with_jacobian(numbers, plus[None], settings, **periodic)[0][0]
        down = soap_with_jacobian(numbers, minus[None], settings, **periodic)[0][0]
        columns.append((up - down) / (2 * step))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("average", ["off", "outer"])
def test_soap_jacobian_of_a_molecule_matches_finite_differences(average: str) -> None:
    water = molecule("H2O")
    water.rattle(0.05, seed=1)
    settings = SOAP.model_copy(update={"average": average})
    features, jacobian = soap_with_jacobian(water.numbers, water.positions[None], settings)
    assert features.shape == (1, soap_feature_count(water.numbers, settings))
    assert jacobian.shape == (1, features.shape[1], 9)
    expected = finite_difference_jacobian(water.numbers, water.positions, settings)
    # dscribe's default attach=False would be off by ~the largest entry here.
    np.testing.assert_allclose(jacobian[0], expected, atol=1e-6 * np.abs(expected).max())


def test_soap_jacobian_of_a_periodic_cell_matches_finite_differences() -> None:
    cell = bulk("Li", "bcc", a=3.5, cubic=True)
    cell.rattle(0.05, seed=2)
    periodic = {"pbc": (True, True, True), "cells_angstrom": np.array(cell.cell)[None]}
    _, jacobian = soap_with_jacobian(cell.numbers, cell.positions[None], SOAP, **periodic)
    expected = finite_difference_jacobian(cell.numbers, cell.positions, SOAP, **periodic)
    np.testing.assert_allclose(jacobian[0], expected, atol=1e-5 * np.abs(expected).max())
    with pytest.raises(ValueError, match="cells_angstrom"):
        soap_with_jacobian(cell.numbers, cell.positions[None], SOAP, pbc=(True, True, True))


def test_missing_dscribe_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dscribe.descriptors", None)  # import now fails
    with pytest.raises(SoapMissingError, match=r"interphase\[soap\]"):
        soap_with_jacobian(np.array([8, 1, 1]), np.zeros((1, 3, 3)), SOAP)


@pytest.mark.parametrize("n_features", [None, 5])
def test_kernel_written_a_row_at_a_time_equals_one_block(
    n_features: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = torch.Generator().manual_seed(2)
    width = 6 if n_features is None else n_features * 7
    x1 = torch.randn(5, width, generator=generator, dtype=torch.float64)
    x2 = torch.randn(4, width, generator=generator, dtype=torch.float64)
    kernel = GradientSEKernel(6, n_features=n_features).double()
    kernel.lengthscale = torch.tensor(1.1, dtype=torch.float64)
    whole = kernel(x1, x2).to_dense()
    monkeypatch.setattr(kernels, "ROW_BLOCK_ELEMENTS", 1)  # one structure per block
    # Other blockings sum in another order (BLAS picks its kernels by CPU), so the
    # property is equality to float64 round-off, not bit for bit.
    torch.testing.assert_close(kernel(x1, x2).to_dense(), whole, atol=1e-14, rtol=1e-12)
    kernel.cache_geometry = True  # the search's path: J_iᵀJ_j kept whole
    torch.testing.assert_close(kernel(x1, x2).to_dense(), whole, atol=1e-14, rtol=1e-12)
