"""GP inputs: checks of the arrays, rigid-motion removal for molecules, SOAP, reference scales."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist

from interphase.gpr.descriptors import DescriptorSettings, soap_with_jacobian
from interphase.gpr.errors import GPInputError, GPTooLargeError

#: Below this many structures the hyperparameters are not identifiable.
MIN_TRAINING_STRUCTURES = 2


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


def gp_inputs(
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    cells_angstrom: np.ndarray | None,
    *,
    descriptor: DescriptorSettings,
    periodic: bool,
    pbc: tuple[bool, bool, bool],
    reference_centred: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GP inputs (m, D), the rotation into the GP frame per structure and distance inputs.

    Cartesian: the aligned coordinates (:func:`align_to_reference`), flattened.
    SOAP: the features followed by their Jacobian, with identity rotations.
    """
    aligned, rotations = align_to_reference(positions_angstrom, reference_centred, periodic)
    if descriptor.kind != "soap":
        flat = aligned.reshape(len(positions_angstrom), -1)
        return flat, rotations, flat
    features, jacobian = soap_with_jacobian(
        numbers, positions_angstrom, descriptor, pbc=pbc, cells_angstrom=cells_angstrom
    )
    identity = np.broadcast_to(np.eye(3), (len(positions_angstrom), 3, 3))
    x = np.concatenate([features, jacobian.reshape(len(positions_angstrom), -1)], axis=1)
    return x, identity, features


def check_cells(cells: np.ndarray | None, n: int, *, required: bool) -> np.ndarray | None:
    """``cells`` as (n, 3, 3) floats, or None; ``required`` for periodic SOAP inputs."""
    if cells is None:
        if required:
            raise GPInputError("periodic SOAP inputs need cells_angstrom (n, 3, 3)")
        return None
    cells = np.asarray(cells, dtype=np.float64)
    if cells.shape != (n, 3, 3):
        raise GPInputError(f"cells_angstrom has shape {cells.shape}; expected ({n}, 3, 3)")
    return cells


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


def check_positions(positions: np.ndarray, n_atoms: int, name: str) -> np.ndarray:
    """``positions`` as float64 (m, n_atoms, 3), or :class:`GPInputError`."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (n_atoms, 3):
        raise GPInputError(
            f"{name} has shape {positions.shape}; expected (n, {n_atoms}, 3) for "
            f"the {n_atoms} atoms this GP was built for"
        )
    return positions


def check_training_arrays(
    positions: np.ndarray,
    energies: np.ndarray,
    gradients: np.ndarray,
    *,
    n_atoms: int,
    max_outputs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes, finiteness and size of training data, checked before anything is allocated."""
    positions = check_positions(positions, n_atoms, "positions_angstrom")
    energies = np.asarray(energies, dtype=np.float64)
    gradients = np.asarray(gradients, dtype=np.float64)
    n = positions.shape[0]
    if energies.shape != (n,):
        raise GPInputError(
            f"energies_hartree has shape {energies.shape}; expected ({n},) to match "
            f"positions_angstrom {positions.shape}"
        )
    if gradients.shape != positions.shape:
        raise GPInputError(
            f"gradients_hartree_per_angstrom has shape {gradients.shape}; expected "
            f"{positions.shape} like positions_angstrom"
        )
    if n < MIN_TRAINING_STRUCTURES:
        raise GPInputError(
            f"got {n} training structure(s); the GP needs at least "
            f"{MIN_TRAINING_STRUCTURES} to fit its hyperparameters"
        )
    n_outputs = n * (3 * n_atoms + 1)
    if n_outputs > max_outputs:
        raise GPTooLargeError(
            f"{n} structures x (3*{n_atoms}+1) = {n_outputs} outputs exceeds "
            f"max_outputs={max_outputs} (kernel matrix would need "
            f"{8 * n_outputs**2 / 1e9:.1f} GB); fit on fewer structures, split the "
            "subset, or raise the memory budget if the machine has the memory"
        )
    if not (np.all(np.isfinite(energies)) and np.all(np.isfinite(gradients))):
        raise GPInputError("energies_hartree and gradients contain NaN or inf")
    return positions, energies, gradients


def rigid_motion_count(n_atoms: int, periodic: bool) -> int:
    """Independent rigid motions of a structure: translations, and rotations for molecules."""
    if periodic or n_atoms == 1:
        return 3
    return 5 if n_atoms == 2 else 6


def internal_gradient_basis(positions_angstrom: np.ndarray, periodic: bool) -> np.ndarray:
    """Orthonormal bases (m, 3N, 3N - r) of the displacements that are not rigid motions.

    An energy that is invariant under translations (and, for molecules, rotations)
    has a gradient with no component along those r rigid motions, so projecting
    gradients onto this basis drops only components that are exactly zero. Columns
    are the left singular vectors of the rigid-motion generators beyond their rank
    (:func:`rigid_motion_count`; an accidentally linear molecule loses one internal
    direction, which is harmless).
    """
    positions = np.asarray(positions_angstrom, dtype=np.float64)
    m, n_atoms, _ = positions.shape
    rank = rigid_motion_count(n_atoms, periodic)
    generators = np.zeros((m, n_atoms, 3, 6))
    for axis in range(3):
        generators[:, :, axis, axis] = 1.0  # translations
    if not periodic:
        centred = positions - positions.mean(axis=1, keepdims=True)
        for axis in range(3):
            unit = np.zeros(3)
            unit[axis] = 1.0
            generators[:, :, :, 3 + axis] = np.cross(unit, centred)  # rotations
    left, _, _ = np.linalg.svd(generators.reshape(m, 3 * n_atoms, 6), full_matrices=True)
    return left[:, :, rank:]
