"""Which candidates get a reference calculation: the selection strategies.

Every strategy returns at most ``budget`` candidate indices for one level and
one iteration, so strategies compared at the same budget buy the same number
of labels:

- ``uncertainty``: candidates whose predicted σ per atom exceeds the level's
  threshold, most uncertain first (fewer than the budget when few are
  uncertain: the loop's default, which stops paying once the GP is sure).
- ``random``: a uniformly random sample of the candidates, seeded (the baseline).
- ``diverse``: farthest-point sampling in a feature space (the GP's inputs):
  each pick is the candidate farthest from the structures already labeled and
  from the picks before it.
- ``uncertainty_diverse``: batch mode; farthest-point sampling restricted to the
  uncertain candidates, starting from the most uncertain one, so that one
  batch does not spend its budget on near-copies of one uncertain region.

Features for the diverse strategies are one row per candidate, comparable
across candidates (e.g. a sorted descriptor or a SOAP average), in any units:
only Euclidean distances between rows are used.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from interphase.gpr.select import select_uncertain


class Strategy(StrEnum):
    """``selection.strategy`` of a campaign."""

    uncertainty = "uncertainty"
    random = "random"
    diverse = "diverse"
    uncertainty_diverse = "uncertainty_diverse"


#: Strategies that need a feature row per candidate.
NEEDS_FEATURES = frozenset({Strategy.diverse, Strategy.uncertainty_diverse})


def pick(
    strategy: Strategy | str,
    *,
    budget: int,
    seed: int,
    std_per_atom: np.ndarray | None = None,
    threshold: float | None = None,
    features: np.ndarray | None = None,
    labeled_features: np.ndarray | None = None,
) -> np.ndarray:
    """Indices (int64, pick order) of at most ``budget`` candidates by ``strategy``.

    ``std_per_atom`` and ``threshold`` (same units) are needed by the
    uncertainty strategies; ``features`` (n, d) by the diverse ones, with
    ``labeled_features`` (m, d) the structures already labeled (may be empty).
    The result depends only on the inputs and ``seed``.
    """
    chosen = Strategy(strategy)
    if budget < 0:
        raise ValueError(f"budget must be >= 0; got {budget}")
    uncertain_kinds = (Strategy.uncertainty, Strategy.uncertainty_diverse)
    if chosen in uncertain_kinds and (std_per_atom is None or threshold is None):
        raise ValueError(f"strategy {chosen.value} needs std_per_atom and threshold")
    if chosen in NEEDS_FEATURES and features is None:
        raise ValueError(f"strategy {chosen.value} needs a feature row per candidate")
    if chosen is Strategy.uncertainty:
        assert std_per_atom is not None and threshold is not None
        return select_uncertain(std_per_atom, threshold, budget)
    if chosen is Strategy.random:
        n = _count(std_per_atom, features)
        rng = np.random.default_rng(seed)
        return np.sort(rng.permutation(n)[: min(budget, n)]).astype(np.int64)
    assert features is not None
    if chosen is Strategy.diverse:
        return farthest_points(features, budget, labeled=labeled_features)
    assert std_per_atom is not None and threshold is not None
    uncertain = select_uncertain(std_per_atom, threshold, len(std_per_atom))
    if uncertain.size == 0:
        return uncertain
    within = farthest_points(
        np.asarray(features)[uncertain], budget, labeled=labeled_features, first=0
    )
    return uncertain[within]


def _count(std: np.ndarray | None, features: np.ndarray | None) -> int:
    if std is not None:
        return len(std)
    if features is not None:
        return len(features)
    raise ValueError("strategy random needs std_per_atom or features to count the candidates")


def farthest_points(
    features: np.ndarray,
    budget: int,
    *,
    labeled: np.ndarray | None = None,
    first: int | None = None,
) -> np.ndarray:
    """Greedy max-min (farthest-point) sampling of at most ``budget`` rows of ``features``.

    Each pick maximises its distance to the nearest of ``labeled`` rows and of
    the picks before it; ties go to the lower index. The first pick is ``first``
    when given; otherwise, with no labeled rows, the row farthest from the mean.
    After it, duplicates of picked or labeled rows (distance 0) are never picked.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d); got shape {x.shape}")
    n = len(x)
    if n == 0 or budget == 0:
        return np.empty(0, dtype=np.int64)
    nearest = np.full(n, np.inf)
    if labeled is not None and len(labeled):
        ref = np.asarray(labeled, dtype=np.float64)
        for start in range(0, len(ref), 1024):
            block = ref[start : start + 1024]
            d = np.sqrt(((x[:, None, :] - block[None, :, :]) ** 2).sum(axis=2))
            nearest = np.minimum(nearest, d.min(axis=1))
    picks: list[int] = []
    if first is not None or not np.isfinite(nearest).any():
        start = first if first is not None else int(np.argmax(((x - x.mean(0)) ** 2).sum(1)))
        picks.append(start)
        nearest = np.minimum(nearest, np.sqrt(((x - x[start]) ** 2).sum(axis=1)))
    while len(picks) < min(budget, n):
        best = int(np.argmax(nearest))
        if nearest[best] <= 0:
            break  # only copies of labeled or picked rows remain
        picks.append(best)
        nearest = np.minimum(nearest, np.sqrt(((x - x[best]) ** 2).sum(axis=1)))
    return np.asarray(picks, dtype=np.int64)
