"""Memory planning for exact energy+gradient GPs.

An exact GP over n structures of N atoms conditions on n(3N+1) outputs. The
dense kernel takes 8·[n(3N+1)]² bytes in float64 and its Cholesky factor as much
again, so memory, not time, limits a subset:

=================  ========  ===========
structures × atoms  outputs   kernel (GB)
=================  ========  ===========
100 × 20             6,100        0.30
200 × 20            12,200        1.19
100 × 46            13,900        1.55
200 × 46            27,800        6.18
400 × 46            55,600       24.7
=================  ========  ===========

A subset above ``max_outputs`` is either subsampled by farthest-point sampling
in the GP's input space (the default: the most diverse structures are kept, so
uncertainty stays meaningful) or refused with
:class:`~interphase.gpr.gp.GPTooLargeError`. The default cap of 30,000 outputs
(7.2 GB kernel, ~15 GB with the factor) fits a 24 GB workstation and an 80 GB GPU.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from interphase.gpr.gp import DEFAULT_MAX_OUTPUTS, GPTooLargeError

__all__ = ["DEFAULT_MAX_OUTPUTS", "farthest_point_indices", "plan_training_indices"]

OversizePolicy = Literal["subsample", "error"]


def kernel_gigabytes(n_structures: int, n_atoms: int) -> float:
    """Size of the dense float64 kernel matrix (GB) for n structures of N atoms."""
    outputs = n_structures * (3 * n_atoms + 1)
    return 8.0 * outputs**2 / 1e9


def max_structures(n_atoms: int, max_outputs: int = DEFAULT_MAX_OUTPUTS) -> int:
    """How many structures of ``n_atoms`` atoms fit under ``max_outputs``."""
    return max(0, max_outputs // (3 * n_atoms + 1))


def farthest_point_indices(inputs: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Greedy farthest-point sample of ``k`` rows of ``inputs`` (n, d), starting at ``start``."""
    flat = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    n = len(flat)
    if k >= n:
        return np.arange(n)
    chosen = [int(start)]
    distance = np.linalg.norm(flat - flat[start], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(flat - flat[nxt], axis=1))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def plan_training_indices(
    inputs: np.ndarray,
    n_atoms: int,
    *,
    max_outputs: int = DEFAULT_MAX_OUTPUTS,
    policy: OversizePolicy = "subsample",
    subset_key: str = "",
) -> np.ndarray:
    """Indices of the training structures to condition on, within ``max_outputs``.

    Parameters
    ----------
    inputs
        (n, ...) structures in the GP's input frame (aligned coordinates).
    n_atoms
        Atoms per structure.
    max_outputs
        Cap on n(3N+1).
    policy
        ``"subsample"`` keeps a farthest-point sample; ``"error"`` raises
        :class:`GPTooLargeError` naming the subset and the memory it would need.
    """
    n = len(inputs)
    limit = max_structures(n_atoms, max_outputs)
    if n <= limit:
        return np.arange(n)
    if policy == "error" or limit < 2:
        raise GPTooLargeError(
            f"subset {subset_key or '?'}: {n} structures × {n_atoms} atoms = "
            f"{n * (3 * n_atoms + 1)} outputs ({kernel_gigabytes(n, n_atoms):.1f} GB kernel) "
            f"exceeds max_outputs={max_outputs} ({limit} structures); use the 'subsample' "
            "policy, raise max_outputs if memory allows, or split the subset"
        )
    return farthest_point_indices(inputs, limit)
