"""Cartesian GP inputs: rigid-motion removal for molecules and reference scales."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist


def kabsch_rotation(mobile: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Proper rotation R (3, 3) minimising ``|mobile @ R - reference|``; both centred (N, 3)."""
    u, _, vt = np.linalg.svd(mobile.T @ reference)
    # Flip the last axis if needed so R is a rotation, not a reflection.
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, sign]) @ vt


def align_to_reference(
    positions_angstrom: np.ndarray, reference_centred: np.ndarray, periodic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Structures (m, N, 3) in the GP frame and the rotation R applied to each (m, 3, 3).

    Molecules are centred and rotated onto ``reference_centred`` (Kabsch), so
    ``aligned = centred @ R``; periodic structures are returned unchanged (R = I).
    """
    rotations = np.broadcast_to(np.eye(3), (len(positions_angstrom), 3, 3)).copy()
    if periodic:
        return np.array(positions_angstrom, dtype=np.float64), rotations
    centred = positions_angstrom - positions_angstrom.mean(axis=1, keepdims=True)
    for k, structure in enumerate(centred):
        rotations[k] = kabsch_rotation(structure, reference_centred)
    return np.einsum("nai,nij->naj", centred, rotations), rotations


def energy_scale(energies: np.ndarray, gradients: np.ndarray, lengthscale_angstrom: float) -> float:
    """Scale (Hartree) that makes both targets O(1) at outputscale 1.

    For an SE kernel the gradient std is sqrt(outputscale) / lengthscale, so
    gradients of size g over a lengthscale l need an energy scale of about g * l;
    scaling by the energy spread alone makes gradients huge for small displacements.
    """
    gradient_rms = float(np.sqrt(np.mean(gradients**2)))
    scale = max(float(energies.std()), gradient_rms * lengthscale_angstrom)
    return scale if scale > 1e-12 else 1.0


def median_pairwise_distance(inputs: np.ndarray) -> float:
    """Median distance between flattened inputs, the reference lengthscale."""
    flat = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    distances = pdist(flat) if len(flat) > 1 else np.empty(0)
    median = float(np.median(distances)) if distances.size else 1.0
    return median if median > 1e-6 else 1.0
