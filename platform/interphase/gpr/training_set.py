"""What a subset GP conditions on, in the frame and energy units the GP works in.

Molecules are compared in the frame of the first training structure (centred;
Kabsch rotation onto it), and energies are centred on their mean and divided by
an energy scale that makes energies and gradients O(1) at outputscale 1
(:func:`~interphase.gpr.inputs.energy_scale`). The GP's targets, its likelihood
projection and its predictions back in Hartree go through this frame.

Units: positions Å, energies Hartree, gradients Hartree/Å (dE/dx, not forces).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interphase.gpr.inputs import (
    align_to_reference,
    energy_scale,
    internal_gradient_basis,
    median_pairwise_distance,
)


@dataclass
class GPPrediction:
    """GP posterior at m structures (latent function, without observation noise)."""

    energy_hartree: np.ndarray  # (m,)
    energy_std_hartree: np.ndarray  # (m,)
    gradient_hartree_per_angstrom: np.ndarray | None  # (m, N, 3), dE/dx; None if not asked


@dataclass(frozen=True)
class TrainingSet:
    """Training structures and labels of one GP, with the frame and scale derived from them."""

    positions_angstrom: np.ndarray  # (n, N, 3)
    energies_hartree: np.ndarray  # (n,)
    gradients_hartree_per_angstrom: np.ndarray  # (n, N, 3), dE/dx
    cells_angstrom: np.ndarray | None  # (n, 3, 3)
    #: The first structure, centred: molecules are rotated onto it.
    reference_centred: np.ndarray  # (N, 3)
    energy_offset_hartree: float
    energy_scale_hartree: float

    @classmethod
    def empty(cls, n_atoms: int) -> TrainingSet:
        """No data yet: offset 0, scale 1."""
        return cls(
            positions_angstrom=np.empty((0, n_atoms, 3)),
            energies_hartree=np.empty(0),
            gradients_hartree_per_angstrom=np.empty((0, n_atoms, 3)),
            cells_angstrom=None,
            reference_centred=np.zeros((n_atoms, 3)),
            energy_offset_hartree=0.0,
            energy_scale_hartree=1.0,
        )

    @classmethod
    def of(
        cls,
        positions: np.ndarray,
        energies: np.ndarray,
        gradients: np.ndarray,
        cells: np.ndarray | None,
        *,
        periodic: bool,
    ) -> TrainingSet:
        """The set of checked arrays; its reference is the first structure."""
        reference = positions[0] - positions[0].mean(axis=0)
        aligned, _ = align_to_reference(positions, reference, periodic)
        return cls(
            positions_angstrom=positions,
            energies_hartree=energies,
            gradients_hartree_per_angstrom=gradients,
            cells_angstrom=cells,
            reference_centred=reference,
            energy_offset_hartree=float(energies.mean()),
            energy_scale_hartree=energy_scale(
                energies, gradients, median_pairwise_distance(aligned)
            ),
        )

    def scaled_targets(self, rotations: np.ndarray) -> np.ndarray:
        """(n, 3N+1) targets: scaled energy, then the gradient rotated into the GP frame."""
        gradients = np.einsum("nai,nij->naj", self.gradients_hartree_per_angstrom, rotations)
        scale = self.energy_scale_hartree
        return np.concatenate(
            [
                ((self.energies_hartree - self.energy_offset_hartree) / scale)[:, None],
                gradients.reshape(len(gradients), -1) / scale,
            ],
            axis=1,
        )

    def likelihood_projection(self, rows: np.ndarray, periodic: bool) -> np.ndarray:
        """(n, T', T) map of structures ``rows`` onto their energy and internal gradient outputs.

        For invariant inputs (see :mod:`interphase.gpr.likelihood`).
        """
        basis = internal_gradient_basis(self.positions_angstrom[rows], periodic)
        n, width, kept = basis.shape
        projection = np.zeros((n, kept + 1, width + 1))
        projection[:, 0, 0] = 1.0
        projection[:, 1:, 1:] = basis.transpose(0, 2, 1)
        return projection

    def prediction(
        self, mean: np.ndarray, variance: np.ndarray, rotations: np.ndarray | None
    ) -> GPPrediction:
        """Scaled posterior ``mean`` (m, T or 1) and energy ``variance`` (m,) in Hartree.

        ``rotations`` (m, 3, 3) take the gradient back to the caller's frame; None
        when the mean holds energies only.
        """
        scale = self.energy_scale_hartree
        gradient = None
        if rotations is not None:
            n_atoms = self.reference_centred.shape[0]
            gradient_frame = mean[:, 1:].reshape(-1, n_atoms, 3) * scale
            # Back to the caller's frame: aligned = centred @ R, so g = g' @ R^T.
            gradient = np.einsum("naj,nij->nai", gradient_frame, rotations)
        return GPPrediction(
            energy_hartree=mean[:, 0] * scale + self.energy_offset_hartree,
            energy_std_hartree=np.sqrt(np.clip(variance, 0.0, None)) * scale,
            gradient_hartree_per_angstrom=gradient,
        )
