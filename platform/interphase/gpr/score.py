"""Score candidate structures by GP uncertainty and queue the uncertain ones.

A candidate is scored by the newest GP of its subset and level; a candidate
whose subset has no GP counts as maximally uncertain (std = inf).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase.units import Hartree
from sqlalchemy import select

from interphase.db.api import (
    create_jobs,
    get_or_create_level,
    known_level_id,
    unlabeled_structure_ids,
)
from interphase.db.models import (
    GPRModel,
    JobReason,
    Structure,
)
from interphase.db.session import transaction
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.select import select_uncertain, spread_out
from interphase.gpr.subsets import gp_arrays

#: Default minimum RMSD (Å) between two picks of the same subset in one iteration.
DEFAULT_MIN_RMSD_ANGSTROM = 0.01


HARTREE_TO_MEV = Hartree * 1000.0


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


def score_candidates(url: str | None, structure_ids: list[int], level: str) -> CandidateScores:
    """Predicted energy std per atom of each candidate from its subset's newest GP."""
    with transaction(url, read_only=True) as session:
        level_id = known_level_id(session, level)
        structures = session.scalars(select(Structure).where(Structure.id.in_(structure_ids))).all()
        by_id = {s.id: s for s in structures}
        missing = sorted(set(structure_ids) - set(by_id))
        if missing:
            raise UnknownCandidateError(f"candidate structure id(s) {missing[:10]} do not exist")
        newest: dict[str, GPRModel] = {}
        for model in session.scalars(
            select(GPRModel).where(GPRModel.level_id == level_id).order_by(GPRModel.id)
        ):
            newest[model.subset_key] = model
        states = {key: (m.id, m.state) for key, m in newest.items()}
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
        if key not in states:
            continue  # no GP for this subset: stays maximally uncertain (inf)
        model_id, state = states[key]
        gp = EnergyGradientGP.from_bytes(state, gp_id=model_id)
        subset_cells = [cells[i] for i in indices]
        prediction = gp.predict(
            np.stack([scores.positions_angstrom[i] for i in indices]),
            None if any(c is None for c in subset_cells) else np.stack(subset_cells),  # type: ignore[arg-type]
            gradients=False,
        )
        scores.std_per_atom_hartree[indices] = prediction.energy_std_hartree / gp.n_atoms
        energies[indices] = prediction.energy_hartree
        for i in indices:
            scores.gpr_model_ids[i] = model_id
    return scores


def queue_uncertain(
    url: str | None,
    scores: CandidateScores,
    level: str,
    *,
    threshold_per_atom_hartree: float,
    max_count: int,
    min_rmsd_angstrom: float = DEFAULT_MIN_RMSD_ANGSTROM,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
) -> list[int]:
    """Create ``uncertainty`` labeling jobs for the selected candidates; returns job ids.

    Candidates above the threshold are taken most uncertain first, capped at
    ``max_count``, skipping any within ``min_rmsd_angstrom`` of an earlier pick
    of the same subset.
    """
    ranked = select_uncertain(
        scores.std_per_atom_hartree, threshold_per_atom_hartree, len(scores.structure_ids)
    )
    if scores.positions_angstrom:
        picked = spread_out(
            ranked,
            scores.subset_keys,
            scores.positions_angstrom,
            scores.periodic,
            min_rmsd_angstrom=min_rmsd_angstrom,
            max_count=max_count,
        )
    else:
        picked = ranked[:max_count]
    with transaction(url) as session:
        level_row = get_or_create_level(session, level)
        job_ids = []
        for i in picked:
            std = float(scores.std_per_atom_hartree[i])
            std_mev = std * HARTREE_TO_MEV if np.isfinite(std) else None
            jobs = create_jobs(
                session,
                [int(scores.structure_ids[i])],
                level_row,
                reason=JobReason.uncertainty,
                reason_detail={
                    "gpr_model_id": scores.gpr_model_ids[i],
                    "predicted_std_per_atom_hartree": std if np.isfinite(std) else None,
                    "predicted_std_per_atom_mev": std_mev,
                    "threshold_per_atom_hartree": threshold_per_atom_hartree,
                    "threshold_per_atom_mev": threshold_per_atom_hartree * HARTREE_TO_MEV,
                    "min_rmsd_angstrom": min_rmsd_angstrom,
                },
                campaign_id=campaign_id,
                iteration_id=iteration_id,
            )
            job_ids += [job.id for job in jobs]
    return job_ids


def unlabeled_candidates(
    url: str | None,
    level: str,
    *,
    generator: str | None = None,
    campaign_id: int | None = None,
) -> list[int]:
    """Ids of structures with neither a label nor a labeling job at ``level``.

    Synthetic (``gpr-augment``) copies are never candidates.
    """
    with transaction(url, read_only=True) as session:
        return unlabeled_structure_ids(
            session, known_level_id(session, level), generator=generator, campaign_id=campaign_id
        )
