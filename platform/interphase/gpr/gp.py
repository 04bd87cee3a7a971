"""Exact Gaussian process on energies and gradients of one homogeneous subset.

One GP models the potential energy surface of structures that share composition,
atom count and periodicity (see :func:`interphase.records.subset_key`). It is an
exact GPyTorch GP fitted jointly to energies and their Cartesian derivatives
(derivative observations; squared-exponential kernel, float64, constant mean,
energies centred and scaled per subset), as in the GPR-ANN paper, and is used
for selection (its std) and augmentation (its mean).

Inputs (:mod:`interphase.gpr.descriptors`): flattened Cartesian coordinates,
molecules centred and rotated onto the first training structure (Kabsch) with
gradients rotated the same way; or SOAP, with its Jacobian in the kernel's
derivative blocks (:mod:`interphase.gpr.kernels`). Hyperparameters maximise
the marginal likelihood with bounds, priors and restarts
(:mod:`interphase.gpr.hyperparameters`).

Memory (:mod:`interphase.gpr.memory`): n structures of N atoms are n(3N+1)
outputs and a dense kernel of 8·[n(3N+1)]² bytes — 200 × 46 atoms is 27,800
outputs, 6.2 GB per copy. ``max_outputs`` bounds conditioning (``fit`` raises
:class:`GPTooLargeError` above it, before allocating anything);
``max_hyperparameter_outputs`` bounds the likelihood optimisation, which above
it runs on a farthest-point sample of the structures. The GP runs on CUDA when
``device="cuda"`` (or ``None`` and a GPU is present), else on CPU.

Units: positions Å, energies Hartree, gradients Hartree/Å (dE/dx, not forces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from interphase.gpr.descriptors import DescriptorSettings, soap_with_jacobian
from interphase.gpr.errors import GPInputError, GPNotFittedError, GPTooLargeError
from interphase.gpr.hyperparameters import (
    HyperparameterSearch,
    current_point,
    optimise_hyperparameters,
    refine_hyperparameters,
    set_scaled_hyperparameters,
)
from interphase.gpr.inputs import (
    MIN_TRAINING_STRUCTURES,
    align_to_reference,
    check_positions,
    check_training_arrays,
    energy_scale,
    internal_gradient_basis,
    kabsch_rotation,
    median_pairwise_distance,
)
from interphase.gpr.kernels import EnergyGradientExactGP
from interphase.gpr.likelihood import ProfilePoint
from interphase.gpr.memory import (
    COARSE_HYPERPARAMETER_OUTPUTS,
    DEFAULT_MAX_HYPERPARAMETER_OUTPUTS,
    DEFAULT_MAX_OUTPUTS,
    farthest_point_indices,
)
from interphase.gpr.posterior import ExactEnergyPosterior

__all__ = [
    "DEFAULT_MAX_OUTPUTS",
    "EnergyGradientGP",
    "GPInputError",
    "GPNotFittedError",
    "GPPrediction",
    "GPTooLargeError",
    "kabsch_rotation",
]

_DTYPE = torch.float64
#: Test structures per prediction chunk: at most this many outputs per chunk.
_PREDICT_CHUNK_OUTPUTS = 4_000


@dataclass
class GPPrediction:
    """GP posterior at m structures (latent function, without observation noise)."""

    energy_hartree: np.ndarray  # (m,)
    energy_std_hartree: np.ndarray  # (m,)
    gradient_hartree_per_angstrom: np.ndarray | None  # (m, N, 3), dE/dx; None if not asked


class EnergyGradientGP:
    """Exact GP on energies and gradients of structures with one fixed atom ordering.

    Parameters
    ----------
    numbers
        Atomic numbers (N,), the same for every structure of the subset.
    periodic
        True for periodic structures (Cartesian inputs: raw coordinates), False for
        molecules (Cartesian inputs: rigid motion removed by centring and Kabsch).
    training_iterations
        Nelder–Mead iterations on the negative log posterior, per restart.
    seed
        Seed of the hyperparameter search.
    max_outputs
        Largest allowed n_structures * (3N + 1) to condition on; beyond it ``fit``
        raises :class:`GPTooLargeError` instead of running out of memory.
    device
        Torch device for kernel algebra; ``None`` picks CUDA when available.
    descriptor
        Input descriptor; ``None`` means Cartesian.
    restarts
        Nelder–Mead runs from the best points of a coarse grid (see hyperparameters).
    max_hyperparameter_outputs
        Above this many outputs, hyperparameters are fitted on a farthest-point
        sample of the structures (the GP still conditions on all of them).
    pbc
        Periodic directions for SOAP (default: all three equal to ``periodic``).
    """

    def __init__(
        self,
        numbers: np.ndarray,
        periodic: bool,
        training_iterations: int = 100,
        seed: int = 0,
        max_outputs: int = DEFAULT_MAX_OUTPUTS,
        device: str | None = None,
        *,
        descriptor: DescriptorSettings | None = None,
        restarts: int = 3,
        max_hyperparameter_outputs: int = DEFAULT_MAX_HYPERPARAMETER_OUTPUTS,
        pbc: tuple[bool, bool, bool] | None = None,
    ) -> None:
        self.numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        self.periodic = bool(periodic)
        self.pbc = pbc if pbc is not None else (self.periodic,) * 3
        self.training_iterations = int(training_iterations)
        self.seed = int(seed)
        self.max_outputs = int(max_outputs)
        self.descriptor = descriptor or DescriptorSettings()
        self.restarts = int(restarts)
        self.max_hyperparameter_outputs = int(max_hyperparameter_outputs)
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.search: HyperparameterSearch | None = None
        self.hyperparameter_structures = 0
        self._model: EnergyGradientExactGP | None = None
        self._cached_posterior: ExactEnergyPosterior | None = None
        self._train_positions = np.empty((0, self.n_atoms, 3))
        self._train_energies = np.empty(0)
        self._train_gradients = np.empty((0, self.n_atoms, 3))
        self._train_cells: np.ndarray | None = None
        self._reference_centred = np.zeros((self.n_atoms, 3))
        self._energy_offset_hartree = 0.0
        self._energy_scale_hartree = 1.0
        self._median_distance = 1.0

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.size)

    @property
    def n_outputs_per_structure(self) -> int:
        """One energy plus 3N gradient components."""
        return 3 * self.n_atoms + 1

    @property
    def uses_soap(self) -> bool:
        return self.descriptor.kind == "soap"

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        positions_angstrom: np.ndarray,
        energies_hartree: np.ndarray,
        gradients_hartree_per_angstrom: np.ndarray,
        cells_angstrom: np.ndarray | None = None,
        *,
        hyperparameters: dict[str, float] | None = None,
    ) -> EnergyGradientGP:
        """Fit hyperparameters by marginal likelihood and condition on the data.

        Parameters
        ----------
        positions_angstrom
            (n, N, 3) training structures.
        energies_hartree
            (n,) total energies.
        gradients_hartree_per_angstrom
            (n, N, 3) energy gradients dE/dx (minus the forces).
        cells_angstrom
            (n, 3, 3) cells; needed for periodic SOAP inputs only.
        hyperparameters
            Use these (as returned by :meth:`hyperparameters` of another GP of the
            same subset and descriptor) instead of optimising: only condition.

        Returns
        -------
        EnergyGradientGP
            ``self``, fitted.
        """
        positions, energies, gradients = check_training_arrays(
            positions_angstrom,
            energies_hartree,
            gradients_hartree_per_angstrom,
            n_atoms=self.n_atoms,
            max_outputs=self.max_outputs,
        )
        self._set_training_data(positions, energies, gradients, cells_angstrom)
        x, y, fps_inputs = self._training_tensors()
        if hyperparameters is not None:
            model = self._new_model(x, y)
            self._apply(model, hyperparameters)
            self.search, self.hyperparameter_structures = None, 0
            self._finish(model)
            self._posterior()  # condition now: a fitted GP is ready to predict
            return self
        limit = max(MIN_TRAINING_STRUCTURES, self.max_hyperparameter_outputs // y.shape[1])
        subset = farthest_point_indices(fps_inputs, limit) if len(x) > limit else np.arange(len(x))
        self.hyperparameter_structures = len(subset)
        model = self._search(x, y, fps_inputs, subset)
        if len(subset) < len(x):
            model.set_train_data(x, y, strict=False)
        self._finish(model)
        self._posterior()
        return self

    def _search(
        self, x: torch.Tensor, y: torch.Tensor, fps_inputs: np.ndarray, subset: np.ndarray
    ) -> EnergyGradientExactGP:
        """Hyperparameters on the structures ``subset``, coarse to fine when it is large.

        The grid and restarts run on a farthest-point sample of at most
        :data:`COARSE_HYPERPARAMETER_OUTPUTS`; one Nelder–Mead run on the whole
        subset then refines their result (each of its steps costs more).
        """
        coarse_limit = max(MIN_TRAINING_STRUCTURES, COARSE_HYPERPARAMETER_OUTPUTS // y.shape[1])
        coarse = subset
        if len(subset) > coarse_limit:
            coarse = subset[farthest_point_indices(fps_inputs[subset], coarse_limit)]
        index = torch.as_tensor(coarse, device=self.device)
        model = self._new_model(x[index], y[index])
        self.search = optimise_hyperparameters(
            model,
            median_distance=self._median_distance,
            iterations=self.training_iterations,
            restarts=self.restarts,
            seed=self.seed,
            projection=self._likelihood_projection(coarse),
        )
        if len(coarse) == len(subset):
            return model
        start = current_point(model)
        index = torch.as_tensor(subset, device=self.device)
        model = self._new_model(x[index], y[index])
        loss, evaluations = refine_hyperparameters(
            model,
            start,
            median_distance=self._median_distance,
            iterations=self.training_iterations,
            projection=self._likelihood_projection(subset),
        )
        self.search.refined_loss = loss
        self.search.evaluations += evaluations
        return model

    def _likelihood_projection(self, rows: np.ndarray) -> torch.Tensor | None:
        """For invariant inputs: (n, T', T) onto the energy and internal gradient outputs.

        See :mod:`interphase.gpr.likelihood`; ``None`` for Cartesian inputs,
        whose kernel has no exactly null outputs.
        """
        if not self.uses_soap:
            return None
        basis = internal_gradient_basis(self._train_positions[rows], any(self.pbc))
        n, width, kept = basis.shape
        projection = np.zeros((n, kept + 1, width + 1))
        projection[:, 0, 0] = 1.0
        projection[:, 1:, 1:] = basis.transpose(0, 2, 1)
        return self._tensor(projection)

    def _apply(
        self, model: EnergyGradientExactGP, values: dict[str, float], clip: bool = True
    ) -> None:
        """Set physical hyperparameters on ``model``, clipped to its bounds (or refused)."""
        scale = self._energy_scale_hartree
        scaled = {
            "lengthscale": values[self.lengthscale_key],
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
        mean = (values["mean_hartree"] - self._energy_offset_hartree) / scale
        set_scaled_hyperparameters(model, ProfilePoint(math.nan, mean=mean, **scaled))

    def _check_cells(self, cells: np.ndarray | None, n: int) -> np.ndarray | None:
        if cells is None:
            if self.uses_soap and any(self.pbc):
                raise GPInputError("periodic SOAP inputs need cells_angstrom (n, 3, 3)")
            return None
        cells = np.asarray(cells, dtype=np.float64)
        if cells.shape != (n, 3, 3):
            raise GPInputError(f"cells_angstrom has shape {cells.shape}; expected ({n}, 3, 3)")
        return cells

    def _set_training_data(
        self,
        positions: np.ndarray,
        energies: np.ndarray,
        gradients: np.ndarray,
        cells: np.ndarray | None,
    ) -> None:
        self._train_positions = positions
        self._train_energies = energies
        self._train_gradients = gradients
        self._train_cells = self._check_cells(cells, len(positions))
        self._reference_centred = positions[0] - positions[0].mean(axis=0)
        self._energy_offset_hartree = float(energies.mean())
        aligned, _ = self._align(positions)
        self._energy_scale_hartree = energy_scale(
            energies, gradients, median_pairwise_distance(aligned)
        )

    def _training_tensors(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Inputs (n, D), scaled targets (n, 3N+1) and the inputs for farthest-point sampling."""
        x, rotations, distance_inputs = self._inputs(self._train_positions, self._train_cells)
        self._median_distance = median_pairwise_distance(distance_inputs)
        gradients = np.einsum("nai,nij->naj", self._train_gradients, rotations)
        scale = self._energy_scale_hartree
        targets = np.concatenate(
            [
                ((self._train_energies - self._energy_offset_hartree) / scale)[:, None],
                gradients.reshape(len(x), -1) / scale,
            ],
            axis=1,
        )
        return self._tensor(x), self._tensor(targets), distance_inputs

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=_DTYPE).to(self.device)

    def _new_model(self, x: torch.Tensor, y: torch.Tensor) -> EnergyGradientExactGP:
        n_features = None
        if self.uses_soap:
            n_features = x.shape[1] // (3 * self.n_atoms + 1)
        model = EnergyGradientExactGP(
            x, y.reshape(len(x), -1), 3 * self.n_atoms, n_features, self._median_distance
        ).to(device=self.device, dtype=_DTYPE)
        self._model = model
        return model

    def _finish(self, model: EnergyGradientExactGP) -> None:
        model.eval()
        model.likelihood.eval()
        self._model = model
        self._cached_posterior = None

    # -------------------------------------------------------------- inputs
    def _inputs(
        self, positions: np.ndarray, cells: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GP inputs (m, D), the rotation into the GP frame per structure and distance inputs."""
        aligned, rotations = self._align(positions)
        if not self.uses_soap:
            flat = aligned.reshape(len(positions), -1)
            return flat, rotations, flat
        features, jacobian = soap_with_jacobian(
            self.numbers, positions, self.descriptor, pbc=self.pbc, cells_angstrom=cells
        )
        identity = np.broadcast_to(np.eye(3), (len(positions), 3, 3))
        x = np.concatenate([features, jacobian.reshape(len(positions), -1)], axis=1)
        return x, identity, features

    def _align(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian inputs in the GP frame and the rotation R used per structure (m, 3, 3)."""
        return align_to_reference(positions, self._reference_centred, self.periodic)

    # -------------------------------------------------------------- predict
    def predict(
        self,
        positions_angstrom: np.ndarray,
        cells_angstrom: np.ndarray | None = None,
        *,
        gradients: bool = True,
    ) -> GPPrediction:
        """Posterior mean energy, its std and (unless ``gradients=False``) mean gradient.

        Parameters
        ----------
        positions_angstrom
            (m, N, 3) structures, atoms in the GP's order.
        cells_angstrom
            (m, 3, 3) cells; needed for periodic SOAP inputs only.
        gradients
            Predict the mean gradient too (m, N, 3). Without it, prediction skips
            the gradient-gradient kernel blocks (much faster for SOAP inputs).
        """
        posterior = self._posterior()
        positions = check_positions(positions_angstrom, self.n_atoms, "positions_angstrom")
        cells = self._check_cells(cells_angstrom, len(positions))
        chunk = max(1, _PREDICT_CHUNK_OUTPUTS // self.n_outputs_per_structure)
        width = self.n_outputs_per_structure if gradients else 1
        means, variances, rotations = [np.empty((0, width))], [np.empty(0)], [np.empty((0, 3, 3))]
        for start in range(0, len(positions), chunk):
            part = slice(start, start + chunk)
            x, rotation, _ = self._inputs(positions[part], None if cells is None else cells[part])
            mean_part, variance_part = posterior.predict(self._tensor(x), gradients)
            means.append(mean_part.cpu().numpy())
            variances.append(variance_part.cpu().numpy())
            rotations.append(rotation)
        mean, variance = np.concatenate(means), np.concatenate(variances)
        scale = self._energy_scale_hartree
        gradient = None
        if gradients:
            gradient_frame = mean[:, 1:].reshape(-1, self.n_atoms, 3) * scale
            # Back to the caller's frame: aligned = centred @ R, so g = g' @ R^T.
            gradient = np.einsum("naj,nij->nai", gradient_frame, np.concatenate(rotations))
        return GPPrediction(
            energy_hartree=mean[:, 0] * scale + self._energy_offset_hartree,
            energy_std_hartree=np.sqrt(np.clip(variance, 0.0, None)) * scale,
            gradient_hartree_per_angstrom=gradient,
        )

    def _posterior(self) -> ExactEnergyPosterior:
        """The cached exact posterior (built on first use after fitting)."""
        if self._cached_posterior is None:
            self._cached_posterior = ExactEnergyPosterior(self._require_model())
        return self._cached_posterior

    def _require_model(self) -> EnergyGradientExactGP:
        if self._model is None:
            raise GPNotFittedError("call fit() (or from_bytes()) before using the GP")
        return self._model

    # ------------------------------------------------------ hyperparameters
    @property
    def lengthscale_key(self) -> str:
        """``lengthscale_angstrom`` (Cartesian) or ``lengthscale_soap`` (descriptor units)."""
        return "lengthscale_soap" if self.uses_soap else "lengthscale_angstrom"

    def hyperparameters(self) -> dict[str, float]:
        """Fitted hyperparameters in physical units.

        ``noise_hartree2`` is the energy noise variance; the gradient noise variance
        is the same number in (Hartree/Å)².
        """
        model = self._require_model()
        scale = self._energy_scale_hartree
        return {
            self.lengthscale_key: float(model.covar_module.base_kernel.lengthscale.item()),
            "outputscale_hartree2": float(model.covar_module.outputscale.item()) * scale**2,
            "noise_hartree2": float(model.likelihood.noise.item()) * scale**2,
            "mean_hartree": float(model.mean_module.constant.item()) * scale
            + self._energy_offset_hartree,
        }

    def set_hyperparameters(
        self,
        *,
        lengthscale_angstrom: float | None = None,
        outputscale_hartree2: float | None = None,
        lengthscale: float | None = None,
    ) -> EnergyGradientGP:
        """Fix the kernel hyperparameters by hand (e.g. chosen on validation data).

        The GP stays conditioned on its training data; only the kernel changes.
        ``lengthscale`` is in the input's units (Å for Cartesian inputs, the same as
        ``lengthscale_angstrom``); a value not given keeps its fitted value.
        """
        model = self._require_model()
        values = self.hyperparameters()
        new_lengthscale = lengthscale if lengthscale is not None else lengthscale_angstrom
        for key, value in (
            (self.lengthscale_key, new_lengthscale),
            ("outputscale_hartree2", outputscale_hartree2),
        ):
            if value is not None:
                if not value > 0:
                    raise GPInputError(f"{key} must be positive; got {value}")
                values[key] = value
        model.train()
        self._apply(model, values, clip=False)
        self._finish(model)  # drops the cached posterior
        return self

    # ---------------------------------------------------------- persistence
    def to_bytes(self) -> bytes:
        """Training data and fitted state; :meth:`from_bytes` predicts identically."""
        from interphase.gpr.persistence import gp_to_bytes

        return gp_to_bytes(self)

    @classmethod
    def from_bytes(
        cls, data: bytes, device: str | None = None, *, gp_id: int | None = None
    ) -> EnergyGradientGP:
        """Rebuild a fitted GP written by :meth:`to_bytes` (no refitting).

        ``gp_id`` (the stored GP's id) is named when the bytes are unreadable.
        """
        from interphase.gpr.persistence import gp_from_bytes

        return gp_from_bytes(data, device, gp_id=gp_id)
