"""Store GPR-ANN augmentation: displaced copies as structures with synthetic labels.

Every reference structure a subset GP was conditioned on gets M displaced copies
(:func:`interphase.gpr.augment.augment_positions`). Kept copies become new
``Structure`` rows (generator ``gpr-augment``, ``parent_id`` = the reference
structure) and ``SyntheticLabel`` rows tied to the GP model — never ``Label``
rows, so synthetic energies cannot be mistaken for reference calculations.
All of one run goes into the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db.models import (
    GPRModel,
    Label,
    LevelOfTheory,
    MembershipRole,
    Structure,
    SyntheticLabel,
)
from interphase.db.structures import store_structures
from interphase.gpr.augment import (
    DEFAULT_COPIES,
    DEFAULT_DELTA_ANGSTROM,
    augment_positions,
)
from interphase.gpr.persistence import gp_from_bytes
from interphase.gpr.subsets import gp_arrays
from interphase.records import StructureRecord

GENERATOR = "gpr-augment"


class AugmentationError(ValueError):
    """Nothing to augment: unknown level, or no fitted GP for it."""


@dataclass
class SubsetAugmentation:
    """What one subset GP contributed."""

    subset_key: str
    gpr_model_id: int
    n_references: int
    n_copies: int
    n_kept: int
    n_new_labels: int
    mean_std_per_atom_hartree: float


def newest_models(
    session: Session, level: str, subset_keys: Sequence[str] | None
) -> list[GPRModel]:
    """The newest GP of every subset at ``level`` (optionally only ``subset_keys``)."""
    level_id = session.scalars(select(LevelOfTheory.id).where(LevelOfTheory.name == level)).first()
    if level_id is None:
        raise AugmentationError(f"no level of theory named {level!r} in the database")
    newest: dict[str, GPRModel] = {}
    for model in session.scalars(
        select(GPRModel).where(GPRModel.level_id == level_id).order_by(GPRModel.id)
    ):
        if not subset_keys or model.subset_key in subset_keys:
            newest[model.subset_key] = model
    if not newest:
        raise AugmentationError(
            f"no fitted GP at level {level!r}"
            + (f" for subset(s) {list(subset_keys)}" if subset_keys else "")
            + "; run `interphase gpr fit` first"
        )
    return [newest[key] for key in sorted(newest)]


def augment_subsets(
    session: Session,
    level: str,
    *,
    copies: int = DEFAULT_COPIES,
    delta_angstrom: float = DEFAULT_DELTA_ANGSTROM,
    std_filter_hartree_per_atom: float | None = None,
    subset_keys: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    models: Sequence[GPRModel] | None = None,
) -> list[SubsetAugmentation]:
    """Augment the reference structures of the newest GP of every subset at ``level``.

    Parameters
    ----------
    session
        The caller's transaction; everything is added to it.
    level
        Level of theory whose GPs label the copies.
    copies, delta_angstrom
        M copies per reference structure, Gaussian displacement width δ (Å).
    std_filter_hartree_per_atom
        Keep copies whose GP energy std per atom is below this (Hartree/atom);
        ``None`` keeps all.
    subset_keys
        Only these subsets (default: all with a GP).
    seed
        Base seed; reference structure k of a subset uses ``seed + k``.
    progress
        Called with each subset key when it is done.
    models
        Augment with exactly these GPs (a campaign's iteration); default the
        newest GP of every subset at ``level``.

    Returns
    -------
    list[SubsetAugmentation]
        Per subset: references, copies drawn, copies kept, new synthetic labels.
        Copies already stored (same content hash)
        keep their row, and a copy already labeled by the same GP gets no second
        synthetic label, so a rerun with the same arguments adds nothing.
    """
    _check_arguments(copies, delta_angstrom, std_filter_hartree_per_atom)
    results = []
    chosen = list(models) if models is not None else newest_models(session, level, subset_keys)
    for model in chosen:
        results.append(
            _augment_one(session, model, copies, delta_angstrom, std_filter_hartree_per_atom, seed)
        )
        if progress is not None:
            progress(model.subset_key)
    return results


def _check_arguments(copies: int, delta_angstrom: float, std_filter: float | None) -> None:
    if copies < 1:
        raise AugmentationError(f"copies must be at least 1; got {copies}")
    if not (np.isfinite(delta_angstrom) and delta_angstrom > 0):
        raise AugmentationError(f"delta must be a positive width in Å; got {delta_angstrom}")
    if std_filter is not None and not std_filter > 0:
        raise AugmentationError(f"the std filter must be positive; got {std_filter}")


def _augment_one(
    session: Session,
    model: GPRModel,
    copies: int,
    delta_angstrom: float,
    std_filter: float | None,
    seed: int,
) -> SubsetAugmentation:
    gp = gp_from_bytes(model.state, gp_id=model.id)
    references = _reference_structures(session, model)
    # Copies grouped by copy index m, so generator_params can name m.
    kept: dict[int, list[tuple[StructureRecord, int, int, float, float]]] = {}
    n_copies, stds = 0, []
    for k, structure in enumerate(references):
        order, positions, cell = gp_arrays(structure)
        augmented = augment_positions(
            gp,
            positions,
            copies=copies,
            delta_angstrom=delta_angstrom,
            std_filter_hartree_per_atom=std_filter,
            seed=seed + k,
            cell_angstrom=cell,
        )
        n_copies += len(augmented.kept)
        stds += list(augmented.energy_std_hartree / structure.n_atoms)
        inverse = np.argsort(order)
        for m in np.flatnonzero(augmented.kept):
            record = _copy_record(structure, augmented.positions_angstrom[m][inverse])
            energy, std = augmented.energy_hartree[m], augmented.energy_std_hartree[m]
            kept.setdefault(int(m), []).append(
                (record, structure.id, seed + k, float(energy), float(std))
            )
    n_new = _store_copies(session, model, kept, copies, delta_angstrom, std_filter)
    return SubsetAugmentation(
        subset_key=model.subset_key,
        gpr_model_id=model.id,
        n_references=len(references),
        n_copies=n_copies,
        n_kept=sum(len(rows) for rows in kept.values()),
        n_new_labels=n_new,
        mean_std_per_atom_hartree=float(np.mean(stds)) if stds else 0.0,
    )


def _store_copies(
    session: Session,
    model: GPRModel,
    kept: dict[int, list[tuple[StructureRecord, int, int, float, float]]],
    copies: int,
    delta_angstrom: float,
    std_filter: float | None,
) -> int:
    """Store the kept copies, one batch per copy index, with their synthetic labels.

    ``kept`` maps a copy index to rows (record, parent structure id, seed, GP energy
    in Hartree, its std in Hartree). Returns the number of new labels.
    """
    n_new = 0
    for copy_index, rows in sorted(kept.items()):
        stored = store_structures(
            session,
            [row[0] for row in rows],
            generator=GENERATOR,
            generator_params={
                "gpr_model_id": model.id,
                "copy_index": copy_index,
                "copies": copies,
                "delta_angstrom": delta_angstrom,
                "std_filter_hartree_per_atom": std_filter,
            },
            seeds=[row[2] for row in rows],
            parent_ids=[row[1] for row in rows],
            campaign_id=model.campaign_id,
            iteration_id=model.iteration_id,
            with_labels=False,
            role=MembershipRole.synthetic,
        )
        n_new += _add_synthetic_labels(
            session, model, stored.ids, [row[3] for row in rows], [row[4] for row in rows]
        )
    return n_new


def _reference_structures(session: Session, model: GPRModel) -> list[Structure]:
    """The GP's training structures in its training order.

    That order (structure id, see :func:`interphase.gpr.subsets.load_subsets`)
    fixes each reference's seed, so the copies do not depend on the order in
    which concurrent workers happened to store the labels.
    """
    label_ids = [int(i) for i in model.training_label_ids]
    structure_of = dict(
        session.execute(select(Label.id, Label.structure_id).where(Label.id.in_(label_ids))).all()
    )
    structure_ids = [structure_of[i] for i in label_ids]
    structures = session.scalars(select(Structure).where(Structure.id.in_(structure_ids))).all()
    by_id = {s.id: s for s in structures}
    return [by_id[i] for i in structure_ids]


def _copy_record(structure: Structure, positions_angstrom: np.ndarray) -> StructureRecord:
    pbc = tuple(c == "p" for c in structure.pbc)
    return StructureRecord(
        numbers=np.asarray(structure.numbers),
        positions_angstrom=positions_angstrom,
        cell_angstrom=structure.cell_angstrom,
        pbc=(pbc[0], pbc[1], pbc[2]),
        charge=structure.charge,
        multiplicity=structure.multiplicity,
    )


def _add_synthetic_labels(
    session: Session,
    model: GPRModel,
    structure_ids: list[int],
    energies_hartree: list[float],
    stds_hartree: list[float],
) -> int:
    """Synthetic labels for the copies; a copy already labeled by this GP is skipped."""
    existing = set(
        session.scalars(
            select(SyntheticLabel.structure_id).where(SyntheticLabel.gpr_model_id == model.id)
        ).all()
    )
    new = 0
    for structure_id, energy, std in zip(
        structure_ids, energies_hartree, stds_hartree, strict=True
    ):
        if structure_id in existing:
            continue
        existing.add(structure_id)
        session.add(
            SyntheticLabel(
                structure_id=structure_id,
                level_id=model.level_id,
                gpr_model_id=model.id,
                energy_hartree=energy,
                energy_std_hartree=std,
            )
        )
        new += 1
    session.flush()
    return new
