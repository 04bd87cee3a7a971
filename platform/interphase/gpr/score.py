"""Score candidate structures by GP uncertainty (ranking only; queueing is labeling's).

A candidate is scored by the newest GP of its subset and level; a candidate
whose subset has no GP counts as maximally uncertain (std = inf).
:func:`interphase.labeling.uncertainty.queue_uncertainty_jobs` turns scores
into labeling jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db.jobs import unlabeled_structure_ids
from interphase.db.levels import known_level_id
from interphase.db.models import GPRModel, Structure
from interphase.gpr.persistence import gp_from_bytes
from interphase.gpr.subsets import gp_arrays


class UnknownCandidateError(KeyError):
    """A candidate structure id is not in the database."""


@dataclass
class CandidateScores:
    """Per-candidate predicted energy (mean and std per atom, Hartree) and its GP."""

    structure_ids: np.ndarray
    std_per_atom_hartree: np.ndarray
    gpr_model_ids: list[int | None]
    energy_hartree: np.ndarray | None = None
    subset_keys: list[str] = field(default_factory=list)
    positions_angstrom: list[np.ndarray] = field(default_factory=list)  # atoms sorted by Z
    periodic: list[bool] = field(default_factory=list)


def newest_gp_models(session: Session, level_id: int) -> dict[str, GPRModel]:
    """The newest stored GP of each subset at a level, by subset key."""
    newest: dict[str, GPRModel] = {}
    for model in session.scalars(
        select(GPRModel).where(GPRModel.level_id == level_id).order_by(GPRModel.id)
    ):
        newest[model.subset_key] = model
    return newest


def score_candidates(
    session: Session,
    structure_ids: list[int],
    level: str,
    *,
    models: Mapping[str, GPRModel] | None = None,
) -> CandidateScores:
    """Predicted energy std per atom of each candidate from its subset's GP.

    ``models`` names the GP of each subset key (default: the newest at ``level``);
    a campaign passes the GPs of its own iteration.
    """
    level_id = known_level_id(session, level)
    structures = session.scalars(select(Structure).where(Structure.id.in_(structure_ids))).all()
    by_id = {s.id: s for s in structures}
    missing = sorted(set(structure_ids) - set(by_id))
    if missing:
        raise UnknownCandidateError(f"candidate structure id(s) {missing[:10]} do not exist")
    if models is not None:
        chosen: Mapping[str, GPRModel] = models
    else:
        chosen = {} if level_id is None else newest_gp_models(session, level_id)
    energies = np.full(len(structure_ids), np.nan)
    scores = CandidateScores(
        np.asarray(structure_ids, dtype=np.int64),
        np.full(len(structure_ids), np.inf),
        [None] * len(structure_ids),
        energies,
    )
    by_subset: dict[str, list[int]] = {}
    cells: list[np.ndarray | None] = []
    for i, sid in enumerate(structure_ids):
        structure = by_id[sid]
        _, positions, cell = gp_arrays(structure)
        scores.subset_keys.append(structure.subset_key)
        scores.positions_angstrom.append(positions)
        scores.periodic.append(structure.pbc != "nnn")
        cells.append(cell)
        by_subset.setdefault(structure.subset_key, []).append(i)
    for key, indices in by_subset.items():
        model = chosen.get(key)
        if model is None:
            continue  # no GP for this subset: stays maximally uncertain (inf)
        gp = gp_from_bytes(model.state, gp_id=model.id)
        subset_cells = [cells[i] for i in indices]
        prediction = gp.predict(
            np.stack([scores.positions_angstrom[i] for i in indices]),
            None if any(c is None for c in subset_cells) else np.stack(subset_cells),  # type: ignore[arg-type]
            gradients=False,
        )
        scores.std_per_atom_hartree[indices] = prediction.energy_std_hartree / gp.n_atoms
        energies[indices] = prediction.energy_hartree
        for i in indices:
            scores.gpr_model_ids[i] = model.id
    return scores


def unlabeled_candidates(
    session: Session,
    level: str,
    *,
    generator: str | None = None,
    campaign_id: int | None = None,
) -> list[int]:
    """Ids of structures with neither a label nor a labeling job at ``level``.

    Synthetic (``gpr-augment``) copies are never candidates.
    """
    return unlabeled_structure_ids(
        session, known_level_id(session, level), generator=generator, campaign_id=campaign_id
    )
