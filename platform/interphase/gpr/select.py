"""Selection of candidates for reference calculations by GP uncertainty."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from interphase.gpr.score import CandidateScores


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


def structure_rmsd_angstrom(a: np.ndarray, b: np.ndarray, periodic: bool) -> float:
    """RMSD (Å) of two structures with the same atom order; molecules after Kabsch fit."""
    from interphase.gpr.inputs import kabsch_rotation

    if periodic:
        return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum((a @ kabsch_rotation(a, b) - b) ** 2, axis=1))))


def spread_out(
    ranked: np.ndarray,
    subset_keys: list[str],
    positions_angstrom: list[np.ndarray],
    periodic: list[bool],
    *,
    min_rmsd_angstrom: float,
    max_count: int,
) -> np.ndarray:
    """Greedy walk down ``ranked`` that skips near-duplicates of earlier picks.

    A candidate is skipped when an already picked candidate of the same subset
    lies within ``min_rmsd_angstrom`` of it (positions in a common atom order),
    so one iteration never spends reference calculations on near-identical
    structures. Returns at most ``max_count`` indices in pick order.
    """
    if min_rmsd_angstrom < 0:
        raise ValueError(f"min_rmsd_angstrom must be >= 0; got {min_rmsd_angstrom}")
    picked: list[int] = []
    for index in ranked:
        i = int(index)
        if len(picked) >= max_count:
            break
        too_close = any(
            subset_keys[j] == subset_keys[i]
            and structure_rmsd_angstrom(positions_angstrom[i], positions_angstrom[j], periodic[i])
            < min_rmsd_angstrom
            for j in picked
        )
        if not too_close:
            picked.append(i)
    return np.asarray(picked, dtype=np.int64)


def pick_uncertain(
    scores: CandidateScores,
    *,
    threshold_per_atom_hartree: float,
    max_count: int,
    min_rmsd_angstrom: float,
) -> np.ndarray:
    """Indices of the candidates to label: above the threshold, most uncertain first.

    At most ``max_count``; a candidate within ``min_rmsd_angstrom`` (Å) of an
    earlier pick of the same subset is skipped.
    """
    ranked = select_uncertain(
        scores.std_per_atom_hartree, threshold_per_atom_hartree, len(scores.structure_ids)
    )
    if not scores.positions_angstrom:
        return ranked[:max_count]
    return spread_out(
        ranked,
        scores.subset_keys,
        scores.positions_angstrom,
        scores.periodic,
        min_rmsd_angstrom=min_rmsd_angstrom,
        max_count=max_count,
    )
