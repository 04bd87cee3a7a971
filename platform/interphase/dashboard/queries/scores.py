"""Candidate uncertainty from ``candidate_score``: distributions, fractions and picks.

A score is a candidate's predicted energy std per atom under its subset's GP
in one iteration; NULL means no GP could judge it (counted apart as "no GP",
and always uncertain). Stage ``select`` scores the pool labeled in that
iteration; stage ``pool`` scores the next iteration's candidates with the GPs
the iteration ended with. Histograms are binned here (log-spaced, in meV/atom),
so a campaign of 100,000 scores sends the browser a few hundred numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.config import SelectionConfig
from interphase.db.models import CandidateScore, LabelingJob, LevelOfTheory
from interphase.units import HARTREE_TO_MEV

#: Histogram bins per level.
N_BINS = 30
#: Widest ratio between the largest and smallest std a histogram spans.
MAX_DECADES = 6
STAGES = ("select", "pool")


@dataclass(frozen=True)
class ScoreGroup:
    """The scores of one iteration, level and stage."""

    iteration_id: int
    level: str
    stage: str
    n_scored: int
    n_uncertain: int
    n_without_gp: int
    n_picked: int
    median_std_mev_per_atom: float | None
    counts: list[int]  # per bin of the level's edges (finite scores only)

    @property
    def uncertain_fraction(self) -> float | None:
        return self.n_uncertain / self.n_scored if self.n_scored else None


@dataclass(frozen=True)
class ScoreDistribution:
    """Every group of scores of some iterations, binned on shared edges per level."""

    edges_mev_per_atom: dict[str, list[float]] = field(default_factory=dict)
    groups: list[ScoreGroup] = field(default_factory=list)

    def group(self, iteration_id: int, level: str, stage: str) -> ScoreGroup | None:
        for one in self.groups:
            if (one.iteration_id, one.level, one.stage) == (iteration_id, level, stage):
                return one
        return None

    @property
    def levels(self) -> list[str]:
        return sorted({one.level for one in self.groups})


def thresholds_mev_per_atom(config: dict[str, Any], levels: Sequence[str]) -> dict[str, float]:
    """Each level's uncertainty threshold (meV/atom) from a stored campaign configuration."""
    selection = SelectionConfig.model_validate(config.get("selection") or {})
    return {level: selection.threshold(level) for level in levels}


def level_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(LevelOfTheory.id, LevelOfTheory.name)).all())


def score_distribution(session: Session, iteration_ids: Sequence[int]) -> ScoreDistribution:
    """Binned std distributions and counts per (iteration, level, stage)."""
    if not iteration_ids:
        return ScoreDistribution()
    rows = session.execute(
        select(
            CandidateScore.iteration_id,
            CandidateScore.level_id,
            CandidateScore.stage,
            CandidateScore.std_per_atom_hartree,
            CandidateScore.uncertain,
            CandidateScore.picked,
        ).where(CandidateScore.iteration_id.in_(list(iteration_ids)))
    )
    names = level_names(session)
    values: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    tallies: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for iteration_id, level_id, stage, std, is_uncertain, is_picked in rows:
        key = (iteration_id, names[level_id], stage)
        tally = tallies[key]
        tally[0] += 1
        tally[1] += bool(is_uncertain)
        tally[2] += std is None
        tally[3] += bool(is_picked)
        if std is not None:
            values[key].append(std)
    mev = {key: np.asarray(v, dtype=float) * HARTREE_TO_MEV for key, v in values.items()}
    edges = {level: _edges(level, mev) for level in {key[1] for key in tallies}}
    groups = []
    for key in sorted(
        tallies, key=lambda k: (k[0], k[1], STAGES.index(k[2]) if k[2] in STAGES else 9)
    ):
        finite = mev.get(key, np.empty(0))
        level_edges = np.asarray(edges[key[1]])
        n, uncertain, without, picked = tallies[key]
        counts = np.histogram(np.clip(finite, level_edges[0], level_edges[-1]), level_edges)[0]
        groups.append(
            ScoreGroup(
                iteration_id=key[0],
                level=key[1],
                stage=key[2],
                n_scored=n,
                n_uncertain=uncertain,
                n_without_gp=without,
                n_picked=picked,
                median_std_mev_per_atom=float(np.median(finite)) if finite.size else None,
                counts=[int(c) for c in counts],
            )
        )
    return ScoreDistribution({k: list(v) for k, v in edges.items()}, groups)


def _edges(level: str, mev: dict[tuple[int, str, str], np.ndarray]) -> list[float]:
    """Log-spaced bin edges over the level's positive std values (meV/atom)."""
    finite = [v[v > 0] for key, v in mev.items() if key[1] == level]
    positive = np.concatenate(finite) if finite else np.empty(0)
    if positive.size == 0:
        return [float(e) for e in np.geomspace(0.01, 100.0, N_BINS + 1)]
    high = float(positive.max())
    low = max(float(positive.min()), high / 10**MAX_DECADES)
    if high <= low * 1.01:
        low, high = low / 2, high * 2
    return [float(e) for e in np.geomspace(low, high, N_BINS + 1)]


@dataclass(frozen=True)
class Pick:
    """A candidate the selection sent to labeling, with its predicted std."""

    structure_id: int
    level: str
    std_mev_per_atom: float | None  # None: no GP could judge it
    gpr_model_id: int | None
    job_id: int | None
    job_state: str | None


def picks(session: Session, iteration_id: int) -> list[Pick]:
    """This iteration's picks, most uncertain first, with their labeling job when queued."""
    rows = session.execute(
        select(
            CandidateScore.structure_id,
            CandidateScore.level_id,
            CandidateScore.std_per_atom_hartree,
            CandidateScore.gpr_model_id,
            LabelingJob.id,
            LabelingJob.state,
        )
        .outerjoin(
            LabelingJob,
            (LabelingJob.structure_id == CandidateScore.structure_id)
            & (LabelingJob.level_id == CandidateScore.level_id)
            & (LabelingJob.iteration_id == CandidateScore.iteration_id),
        )
        .where(CandidateScore.iteration_id == iteration_id, CandidateScore.picked.is_(True))
    )
    names = level_names(session)
    found = [
        Pick(
            structure_id=structure_id,
            level=names[level_id],
            std_mev_per_atom=None if std is None else std * HARTREE_TO_MEV,
            gpr_model_id=model_id,
            job_id=job_id,
            job_state=None if state is None else str(getattr(state, "value", state)),
        )
        for structure_id, level_id, std, model_id, job_id, state in rows
    ]
    return sorted(
        found,
        key=lambda p: (p.level, -(p.std_mev_per_atom if p.std_mev_per_atom is not None else 1e300)),
    )
