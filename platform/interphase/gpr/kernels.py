"""Squared-exponential kernel with derivative observations, for GPyTorch.

The latent energy is f(x) = g(D(x)) with g ~ GP(c, s·exp(-|a-b|²/2l²)) on an
input map D: the identity for Cartesian inputs, SOAP for invariant ones. The
outputs per structure are (f, ∂f/∂x_1 … ∂f/∂x_3N), and with r = D_i - D_j,
J_i = dD/dx at structure i, P = J_iᵀr, Q = J_jᵀr and k = exp(-|r|²/2l²):

    cov(f_i,  f_j)  = k
    cov(f_i,  ∂f_j) = k Q / l²
    cov(∂f_i, f_j)  = -k P / l²
    cov(∂f_i, ∂f_j) = k (J_iᵀJ_j / l² - P Qᵀ / l⁴)

(J = I for Cartesian inputs recovers GPyTorch's ``RBFKernelGrad``; the diagonal of
K(X, X) carries a relative nugget, :data:`RELATIVE_NUGGET`). The matrix
is returned in GPyTorch's multitask layout (outputs of one structure
adjacent). Unlike ``RBFKernelGrad`` it is written in place in that layout, a
block of rows at a time (no permutation copy, no kernel-sized temporaries), and
the parts that do not depend on the lengthscale (distances, P, Q and, for
descriptor inputs, J_iᵀJ_j) can be cached while hyperparameters are searched, so
each trial point costs little more than its Cholesky factorisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import gpytorch
import torch

from interphase.gpr.likelihood import INITIAL_NOISE, constraints_and_priors

#: Every prior variance on the diagonal of K(X, X) is raised by this fraction. SOAP
#: inputs are invariant, so each structure's gradient outputs carry exact null
#: directions (net force and torque are zero: 6 per molecule, 3 per cell) and the
#: kernel is singular up to the likelihood noise, which the optimiser drives to
#: its bound for nearly noise-free labels. 1e-10 keeps the Cholesky factorisation
#: stable while adding an energy std of only 1e-5·sqrt(outputscale).
RELATIVE_NUGGET = 1e-10
#: Largest temporary (float elements) while the derivative blocks are written: 16 M
#: elements, 128 MB in float64, whatever the kernel's size.
ROW_BLOCK_ELEMENTS = 1 << 24


class ConstantEnergyMean(gpytorch.means.Mean):
    """Constant mean for the energy, zero for its n_coordinates derivatives."""

    def __init__(self, n_coordinates: int) -> None:
        super().__init__()
        self.n_coordinates = int(n_coordinates)
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = self.constant.to(x.dtype).expand(x.shape[0], 1)
        return torch.nn.functional.pad(energy, (0, self.n_coordinates))


@dataclass
class _Geometry:
    """Lengthscale-independent pieces of K(x1, x2), each a fraction of the kernel's size."""

    squared_distance: torch.Tensor  # (n1, n2)
    p: torch.Tensor  # (n1, C, n2): J_iᵀ r_ij
    q: torch.Tensor  # (n1, n2, C): J_jᵀ r_ij
    #: Descriptor inputs: the Jacobians flattened (n1·C, F) and (n2·C, F); None for Cartesian.
    jacobians: tuple[torch.Tensor, torch.Tensor] | None = None
    #: J_iᵀJ_j (n1, C, n2, C), kernel-sized: kept only while hyperparameters are searched.
    jtj: torch.Tensor | None = None


def _same_inputs(x1: torch.Tensor, x2: torch.Tensor) -> bool:
    """K(X, X) rather than a cross kernel (then the diagonal carries the nugget)."""
    return x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))


def _jtj_rows(
    jacobians: tuple[torch.Tensor, torch.Tensor], part: slice, c: int, n2: int
) -> torch.Tensor:
    """J_iᵀJ_j for the structures i in ``part``: (rows, C, n2, C)."""
    flat1, flat2 = jacobians
    return (flat1[part.start * c : part.stop * c] @ flat2.T).reshape(-1, c, n2, c)


class GradientSEKernel(gpytorch.kernels.Kernel):
    """SE kernel on D(x) with energy and Cartesian-derivative outputs.

    The matrix is written in place into one preallocated tensor, a block of rows
    at a time (:data:`ROW_BLOCK_ELEMENTS`), so building it costs the kernel and a
    small block of temporaries. It is not differentiable with respect to the
    hyperparameters: nothing needs that (the search in
    :mod:`interphase.gpr.hyperparameters` uses no gradients).

    Parameters
    ----------
    n_coordinates
        3N, the derivative outputs per structure.
    n_features
        Length of D(x) for descriptor inputs, whose rows are
        ``[D (n_features), J flattened (n_features * n_coordinates)]``;
        ``None`` for Cartesian inputs (rows are x itself, J = I).
    """

    has_lengthscale = True

    def __init__(self, n_coordinates: int, n_features: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.n_coordinates = int(n_coordinates)
        self.n_features = n_features
        #: Keep the geometry of the last (x1, x2) while hyperparameters are optimised.
        self.cache_geometry = False
        self._cached: tuple[torch.Tensor, torch.Tensor, _Geometry] | None = None

    def num_outputs_per_input(self, x1: torch.Tensor, x2: torch.Tensor) -> int:
        return self.n_coordinates + 1

    def clear_cache(self) -> None:
        self._cached = None

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.n_features is None:
            return x, None
        f = self.n_features
        return x[:, :f], x[:, f:].reshape(x.shape[0], f, self.n_coordinates)

    def forward(  # type: ignore[override]
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: object
    ) -> torch.Tensor:
        if x1.dim() != 2 or x2.dim() != 2:
            raise ValueError("GradientSEKernel takes 2-D inputs (no batch GPs)")
        with torch.no_grad():
            ell2 = self.lengthscale.reshape(()) ** 2
            if diag:
                return self._diagonal(x1, ell2)
            return self._matrix(x1, x2, ell2)

    def _matrix(self, x1: torch.Tensor, x2: torch.Tensor, ell2: torch.Tensor) -> torch.Tensor:
        g = self._geometry(x1, x2)
        n1, c, n2 = g.p.shape
        k = torch.exp(-0.5 * g.squared_distance / ell2)
        k_l2 = k / ell2
        kernel = torch.empty(n1, c + 1, n2, c + 1, dtype=x1.dtype, device=x1.device)
        kernel[:, 0, :, 0] = k
        kernel[:, 0, :, 1:] = k_l2[:, :, None] * g.q
        kernel[:, 1:, :, 0] = -k_l2[:, None, :] * g.p
        rows = max(1, ROW_BLOCK_ELEMENTS // (c * n2 * c))
        for start in range(0, n1, rows):
            part = slice(start, start + rows)
            # cov(∂f_i, ∂f_j) = k (J_iᵀJ_j / l² - P Qᵀ / l⁴), written into its view.
            block = kernel[part, 1:, :, 1:]
            block.copy_(g.p[part, :, :, None] * g.q[part, None, :, :])
            block.mul_((-k_l2[part] / ell2)[:, None, :, None])
            if g.jacobians is None:
                block.diagonal(dim1=1, dim2=3).add_(k_l2[part][:, :, None])
            else:
                jtj = g.jtj[part] if g.jtj is not None else _jtj_rows(g.jacobians, part, c, n2)
                block.add_(k_l2[part][:, None, :, None] * jtj)
        square = kernel.reshape(n1 * (c + 1), n2 * (c + 1))
        if _same_inputs(x1, x2):
            diagonal = square.diagonal()
            diagonal.add_(RELATIVE_NUGGET * diagonal)
        return square

    def energy_rows(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Rows of the energies of x1 only: cov(f(x1), every output of x2), (n1, n2·(C+1)).

        Needs no J_iᵀJ_j block, so it is much cheaper than the full kernel when only
        energies (and their variance) are predicted.
        """
        d1, _ = self._split(x1)
        d2, j2 = self._split(x2)
        ell2 = self.lengthscale.reshape(()) ** 2
        squared = torch.cdist(d1, d2, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        if j2 is None:
            q = d1[:, None, :] - d2[None, :, :]
        else:
            anchor = torch.einsum("mfc,mf->mc", j2, d2)
            q = torch.einsum("mfc,nf->nmc", j2, d1) - anchor[None, :, :]
        k = torch.exp(-0.5 * squared / ell2)
        rows = torch.cat([k[:, :, None], (k / ell2)[:, :, None] * q], dim=2)
        return rows.reshape(x1.shape[0], -1)

    def _diagonal(self, x: torch.Tensor, ell2: torch.Tensor) -> torch.Tensor:
        _, jacobian = self._split(x)
        n, c = x.shape[0], self.n_coordinates
        if jacobian is None:
            gradient_part = torch.ones(n, c, dtype=x.dtype, device=x.device)
        else:
            gradient_part = (jacobian**2).sum(dim=1)
        ones = torch.ones(n, 1, dtype=x.dtype, device=x.device)
        return torch.cat([ones, gradient_part / ell2], dim=1).reshape(-1) * (1 + RELATIVE_NUGGET)

    def _geometry(self, x1: torch.Tensor, x2: torch.Tensor) -> _Geometry:
        cached = self._cached
        if (
            self.cache_geometry
            and cached is not None
            and cached[0].shape == x1.shape
            and cached[1].shape == x2.shape
            and torch.equal(cached[0], x1)
            and torch.equal(cached[1], x2)
        ):
            return cached[2]
        geometry = self._compute_geometry(x1.detach(), x2.detach())
        if self.cache_geometry:
            if geometry.jacobians is not None:  # reused at every trial point: worth its memory
                n1, c, n2 = geometry.p.shape
                geometry.jtj = _jtj_rows(geometry.jacobians, slice(0, n1), c, n2)
            self._cached = (x1.detach(), x2.detach(), geometry)
        return geometry

    def _compute_geometry(self, x1: torch.Tensor, x2: torch.Tensor) -> _Geometry:
        d1, j1 = self._split(x1)
        d2, j2 = self._split(x2)
        squared = torch.cdist(d1, d2, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        if j1 is None or j2 is None:
            r = d1[:, None, :] - d2[None, :, :]  # (n1, n2, C)
            return _Geometry(squared, r.permute(0, 2, 1).contiguous(), r)
        same = _same_inputs(x1, x2)
        # b12[i, j] = J_iᵀ d2_j and b21[i, j] = J_jᵀ d1_i.
        a1 = torch.einsum("nfc,nf->nc", j1, d1)
        b12 = torch.einsum("nfc,mf->nmc", j1, d2)
        a2 = a1 if same else torch.einsum("mfc,mf->mc", j2, d2)
        b21 = b12.transpose(0, 1) if same else torch.einsum("mfc,nf->nmc", j2, d1)
        p = (a1[:, None, :] - b12).permute(0, 2, 1).contiguous()
        q = (b21 - a2[None, :, :]).contiguous()
        flat1 = j1.permute(0, 2, 1).reshape(-1, j1.shape[1])
        flat2 = flat1 if same else j2.permute(0, 2, 1).reshape(-1, j2.shape[1])
        return _Geometry(squared, p, q, jacobians=(flat1, flat2))


class EnergyGradientExactGP(gpytorch.models.ExactGP):
    """f and df/dx jointly: constant energy mean, scaled SE kernel with derivative blocks."""

    def __init__(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        n_coordinates: int,
        n_features: int | None,
        median_distance: float,
    ) -> None:
        bounds = constraints_and_priors(median_distance)
        likelihood = gpytorch.likelihoods.MultitaskGaussianLikelihood(
            num_tasks=n_coordinates + 1,
            has_task_noise=False,
            noise_constraint=bounds["noise_constraint"],
            noise_prior=bounds["noise_prior"],
        )
        super().__init__(train_x, train_y, likelihood)
        self.mean_module = ConstantEnergyMean(n_coordinates)
        base = GradientSEKernel(
            n_coordinates,
            n_features,
            lengthscale_constraint=bounds["lengthscale_constraint"],
            lengthscale_prior=bounds["lengthscale_prior"],
        )
        base.lengthscale = median_distance
        self.covar_module = gpytorch.kernels.ScaleKernel(
            base,
            outputscale_constraint=bounds["outputscale_constraint"],
            outputscale_prior=bounds["outputscale_prior"],
        )
        likelihood.noise = INITIAL_NOISE

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultitaskMultivariateNormal:
        return gpytorch.distributions.MultitaskMultivariateNormal(
            self.mean_module(x), self.covar_module(x)
        )
