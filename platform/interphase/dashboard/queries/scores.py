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
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from interphase.campaign.config_sections import SelectionConfig
from interphase.db.models import CandidateScore, LabelingJob, LevelOfTheory
from interphase.units import HARTREE_TO_MEV, mev_to_hartree

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


def score_distribution(
    session: Session, iteration_ids: Sequence[int], *, with_median: bool = False
) -> ScoreDistribution:
    """Binned std distributions and counts per (iteration, level, stage).

    The binning runs in the database (one grouped query per level), so 100,000
    scores come back as a few hundred rows. ``with_median`` also reads the
    finite values themselves for the median (meant for one iteration).
    """
    if not iteration_ids:
        return ScoreDistribution()
    ids = list(iteration_ids)
    names = level_names(session)
    std = CandidateScore.std_per_atom_hartree
    ranges = session.execute(
        select(CandidateScore.level_id, func.min(std), func.max(std))
        .where(CandidateScore.iteration_id.in_(ids), std > 0)
        .group_by(CandidateScore.level_id)
    ).all()
    levels = session.scalars(
        select(CandidateScore.level_id).where(CandidateScore.iteration_id.in_(ids)).distinct()
    ).all()
    bounds = {level_id: (low, high) for level_id, low, high in ranges}
    edges: dict[str, list[float]] = {}
    groups: list[ScoreGroup] = []
    for level_id in levels:
        level = names[level_id]
        low, high = bounds.get(level_id, (None, None))
        edges[level] = log_edges(low, high)
        groups += _level_groups(session, ids, level_id, level, edges[level], with_median)
    groups.sort(key=lambda g: (ids.index(g.iteration_id), g.level, STAGES.index(g.stage)))
    return ScoreDistribution(edges, groups)


def log_edges(low_hartree: float | None, high_hartree: float | None) -> list[float]:
    """:data:`N_BINS` log-spaced bins (meV/atom) over a level's positive std range."""
    if low_hartree is None or high_hartree is None:
        return [float(e) for e in np.geomspace(0.01, 100.0, N_BINS + 1)]
    high = high_hartree * HARTREE_TO_MEV
    low = max(low_hartree * HARTREE_TO_MEV, high / 10**MAX_DECADES)
    if high <= low * 1.01:
        low, high = low / 2, high * 2
    return [float(e) for e in np.geomspace(low, high, N_BINS + 1)]


def _bin_of(edges_mev: list[float]) -> Any:
    """SQL: the bin of a score (-1: no GP); values outside the edges go to the end bins."""
    std = CandidateScore.std_per_atom_hartree
    inner = [mev_to_hartree(e) for e in edges_mev[1:-1]]
    whens = [(std.is_(None), -1), *((std < edge, k) for k, edge in enumerate(inner))]
    return case(*whens, else_=len(inner)).label("bin")


def _level_groups(
    session: Session,
    ids: list[int],
    level_id: int,
    level: str,
    edges_mev: list[float],
    with_median: bool,
) -> list[ScoreGroup]:
    bin_of = _bin_of(edges_mev)
    rows = session.execute(
        select(
            CandidateScore.iteration_id,
            CandidateScore.stage,
            bin_of,
            func.count(),
            func.sum(case((CandidateScore.uncertain, 1), else_=0)),
            func.sum(case((CandidateScore.picked, 1), else_=0)),
        )
        .where(CandidateScore.iteration_id.in_(ids), CandidateScore.level_id == level_id)
        .group_by(CandidateScore.iteration_id, CandidateScore.stage, bin_of)
    ).all()
    tallies: dict[tuple[int, str], list[Any]] = defaultdict(
        lambda: [0, 0, 0, 0, [0] * (len(edges_mev) - 1)]
    )
    for iteration_id, stage, bin_index, n, uncertain, picked in rows:
        tally = tallies[(iteration_id, stage)]
        tally[0] += int(n)
        tally[1] += int(uncertain or 0)
        tally[3] += int(picked or 0)
        if bin_index < 0:
            tally[2] += int(n)
        else:
            tally[4][bin_index] += int(n)
    medians = _medians(session, ids, level_id) if with_median else {}
    return [
        ScoreGroup(
            iteration_id=iteration_id,
            level=level,
            stage=stage,
            n_scored=n,
            n_uncertain=uncertain,
            n_without_gp=without,
            n_picked=picked,
            median_std_mev_per_atom=medians.get((iteration_id, stage)),
            counts=counts,
        )
        for (iteration_id, stage), (n, uncertain, without, picked, counts) in tallies.items()
        if stage in STAGES
    ]


def _medians(session: Session, ids: list[int], level_id: int) -> dict[tuple[int, str], float]:
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    for iteration_id, stage, std in session.execute(
        select(
            CandidateScore.iteration_id, CandidateScore.stage, CandidateScore.std_per_atom_hartree
        ).where(
            CandidateScore.iteration_id.in_(ids),
            CandidateScore.level_id == level_id,
            CandidateScore.std_per_atom_hartree.is_not(None),
        )
    ):
        if std is not None:
            values[(iteration_id, stage)].append(std)
    return {key: float(np.median(v)) * HARTREE_TO_MEV for key, v in values.items()}


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
