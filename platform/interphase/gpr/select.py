"""Selection of candidates for reference calculations by GP uncertainty."""

from __future__ import annotations

import numpy as np


def select_uncertain(
    std_per_atom_hartree: np.ndarray, threshold: float, max_count: int
) -> np.ndarray:
    """Indices of candidates whose predicted std exceeds ``threshold``, most uncertain first.

    Parameters
    ----------
    std_per_atom_hartree
        (n,) predicted energy std per atom (Hartree) of each candidate. NaN or inf
        means no GP could judge the candidate (e.g. its subset has no GP yet); it
        counts as maximally uncertain.
    threshold
        Std per atom (Hartree) above which a candidate is selected (strictly greater).
    max_count
        Cap on the number of selected candidates (>= 0).

    Returns
    -------
    np.ndarray
        (k,) int64 indices into ``std_per_atom_hartree``, k <= max_count, ordered by
        decreasing std; ties (and all unjudged candidates) keep their input order.
    """
    std = np.asarray(std_per_atom_hartree, dtype=np.float64)
    if std.ndim != 1:
        raise ValueError(
            f"std_per_atom_hartree must be one-dimensional (one std per candidate); "
            f"got shape {std.shape}"
        )
    if max_count < 0:
        raise ValueError(f"max_count must be >= 0; got {max_count}")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN; give a std per atom in Hartree")
    uncertainty = np.where(np.isfinite(std), std, np.inf)
    candidates = np.flatnonzero(uncertainty > threshold)
    # Stable sort on the negated std: most uncertain first, input order among ties.
    order = np.argsort(-uncertainty[candidates], kind="stable")
    return candidates[order][:max_count].astype(np.int64)
