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

Memory (sizes in :mod:`interphase.gpr.memory`): ``max_outputs`` bounds
conditioning (``fit`` raises ``GPTooLargeError`` above it, before allocating
anything); ``max_hyperparameter_outputs`` bounds the likelihood optimisation,
which above it runs on a farthest-point sample of the structures. The GP runs
on CUDA when ``device="cuda"`` (or ``None`` and a GPU is present), else on CPU.

Units: positions Å, energies Hartree, gradients Hartree/Å (dE/dx, not forces).
"""

from __future__ import annotations

import numpy as np
import torch

from interphase.devices import select_device
from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.errors import GPNotFittedError
from interphase.gpr.hyperparameter_values import (
    overridden_hyperparameters,
    physical_hyperparameters,
    set_physical_hyperparameters,
)
from interphase.gpr.hyperparameters import HyperparameterSearch, search_hyperparameters
from interphase.gpr.inputs import (
    check_cells,
    check_positions,
    check_training_arrays,
    gp_inputs,
    median_pairwise_distance,
)
from interphase.gpr.kernels import EnergyGradientExactGP
from interphase.gpr.memory import (
    COARSE_HYPERPARAMETER_OUTPUTS,
    DEFAULT_MAX_HYPERPARAMETER_OUTPUTS,
    DEFAULT_MAX_OUTPUTS,
)
from interphase.gpr.posterior import ExactEnergyPosterior
from interphase.gpr.settings import DEFAULT_RESTARTS, DEFAULT_TRAINING_ITERATIONS
from interphase.gpr.state import GP_SETTINGS, GPState
from interphase.gpr.training_set import GPPrediction, TrainingSet

__all__ = ["EnergyGradientGP"]

_DTYPE = torch.float64
#: Test structures per prediction chunk: at most this many outputs per chunk.
_PREDICT_CHUNK_OUTPUTS = 4_000


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
        training_iterations: int = DEFAULT_TRAINING_ITERATIONS,
        seed: int = 0,
        max_outputs: int = DEFAULT_MAX_OUTPUTS,
        device: str | None = None,
        *,
        descriptor: DescriptorSettings | None = None,
        restarts: int = DEFAULT_RESTARTS,
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
        self.device = select_device(device)
        self.search: HyperparameterSearch | None = None
        self.hyperparameter_structures = 0
        self._model: EnergyGradientExactGP | None = None
        self._cached_posterior: ExactEnergyPosterior | None = None
        self._data = TrainingSet.empty(self.n_atoms)
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
        self._set_data(positions, energies, gradients, cells_angstrom)
        x, y, fps_inputs = self._training_tensors()
        if hyperparameters is not None:
            model = self._new_model(x, y)
            self._apply(model, hyperparameters)
            self.search, self.hyperparameter_structures = None, 0
        else:
            model, self.search, self.hyperparameter_structures = search_hyperparameters(
                self._new_model,
                x,
                y,
                fps_inputs,
                max_outputs=self.max_hyperparameter_outputs,
                coarse_outputs=COARSE_HYPERPARAMETER_OUTPUTS,
                median_distance=self._median_distance,
                iterations=self.training_iterations,
                restarts=self.restarts,
                seed=self.seed,
                projection=self._likelihood_projection,
            )
        self._finish(model)
        self._posterior()  # condition now: a fitted GP is ready to predict
        return self

    def _likelihood_projection(self, rows: np.ndarray) -> torch.Tensor | None:
        """For invariant inputs: (n, T', T) onto the energy and internal gradient outputs.

        ``None`` for Cartesian inputs, whose kernel has no exactly null outputs.
        """
        if not self.uses_soap:
            return None
        return self._tensor(self._data.likelihood_projection(rows, any(self.pbc)))

    def _apply(
        self, model: EnergyGradientExactGP, values: dict[str, float], clip: bool = True
    ) -> None:
        """Set physical hyperparameters on ``model``, clipped to its bounds (or refused)."""
        set_physical_hyperparameters(
            model,
            values,
            self.lengthscale_key,
            self._data.energy_scale_hartree,
            self._data.energy_offset_hartree,
            clip=clip,
        )

    def _check_cells(self, cells: np.ndarray | None, n: int) -> np.ndarray | None:
        return check_cells(cells, n, required=self.uses_soap and any(self.pbc))

    def _set_data(
        self,
        positions: np.ndarray,
        energies: np.ndarray,
        gradients: np.ndarray,
        cells: np.ndarray | None,
    ) -> None:
        """Hold checked training arrays (Å, Hartree, Hartree/Å) as the GP's training set."""
        cells = self._check_cells(cells, len(positions))
        self._data = TrainingSet.of(positions, energies, gradients, cells, periodic=self.periodic)

    def _training_tensors(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Inputs (n, D), scaled targets (n, 3N+1) and the inputs for farthest-point sampling."""
        data = self._data
        x, rotations, distance_inputs = self._inputs(data.positions_angstrom, data.cells_angstrom)
        self._median_distance = median_pairwise_distance(distance_inputs)
        targets = data.scaled_targets(rotations)
        return self._tensor(x), self._tensor(targets), distance_inputs

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=_DTYPE).to(self.device)

    def _new_model(self, x: torch.Tensor, y: torch.Tensor) -> EnergyGradientExactGP:
        n_features = x.shape[1] // (3 * self.n_atoms + 1) if self.uses_soap else None
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

    def _inputs(
        self, positions: np.ndarray, cells: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GP inputs (m, D), the rotation into the GP frame per structure and distance inputs."""
        return gp_inputs(
            self.numbers,
            positions,
            cells,
            descriptor=self.descriptor,
            periodic=self.periodic,
            pbc=self.pbc,
            reference_centred=self._data.reference_centred,
        )

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
        return self._data.prediction(
            np.concatenate(means),
            np.concatenate(variances),
            np.concatenate(rotations) if gradients else None,
        )

    def _posterior(self) -> ExactEnergyPosterior:
        """The cached exact posterior (built on first use after fitting)."""
        if self._cached_posterior is None:
            self._cached_posterior = ExactEnergyPosterior(self._require_model())
        return self._cached_posterior

    def _require_model(self) -> EnergyGradientExactGP:
        if self._model is None:
            raise GPNotFittedError("call fit() (or from_state()) before using the GP")
        return self._model

    @property
    def lengthscale_key(self) -> str:
        """``lengthscale_angstrom`` (Cartesian) or ``lengthscale_soap`` (descriptor units)."""
        return "lengthscale_soap" if self.uses_soap else "lengthscale_angstrom"

    def hyperparameters(self) -> dict[str, float]:
        """Fitted hyperparameters in physical units.

        ``noise_hartree2`` is the energy noise variance; the gradient noise variance
        is the same number in (Hartree/Å)².
        """
        return physical_hyperparameters(
            self._require_model(),
            self.lengthscale_key,
            self._data.energy_scale_hartree,
            self._data.energy_offset_hartree,
        )

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
        new_lengthscale = lengthscale if lengthscale is not None else lengthscale_angstrom
        values = overridden_hyperparameters(
            self.hyperparameters(),
            {self.lengthscale_key: new_lengthscale, "outputscale_hartree2": outputscale_hartree2},
        )
        model.train()
        self._apply(model, values, clip=False)
        self._finish(model)  # drops the cached posterior
        return self

    def state(self) -> GPState:
        """Settings, training data and fitted model state; :meth:`from_state` rebuilds the GP."""
        model = self._require_model()
        return GPState(
            **{name: getattr(self, name) for name in GP_SETTINGS},
            positions_angstrom=self._data.positions_angstrom,
            energies_hartree=self._data.energies_hartree,
            gradients_hartree_per_angstrom=self._data.gradients_hartree_per_angstrom,
            cells_angstrom=self._data.cells_angstrom,
            model_state={k: v.cpu() for k, v in model.state_dict().items()},
        )

    @classmethod
    def from_state(cls, state: GPState, device: str | None = None) -> EnergyGradientGP:
        """The fitted GP of ``state`` on ``device`` (default: CUDA if any); predicts identically.

        It conditions on the state's data with its hyperparameters (no refitting).
        """
        gp = cls(**{name: getattr(state, name) for name in GP_SETTINGS}, device=device)
        gp._set_data(
            state.positions_angstrom,
            state.energies_hartree,
            state.gradients_hartree_per_angstrom,
            state.cells_angstrom,
        )
        x, y, _ = gp._training_tensors()
        model = gp._new_model(x, y)
        # Priors only shape the search, not predictions; GPs stored before the noise
        # prior existed lack its buffers, which keep this version's values.
        merged = model.state_dict()
        merged.update(state.model_state)
        model.load_state_dict(merged)
        gp._finish(model)
        return gp
