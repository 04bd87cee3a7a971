"""Fit one local GP per homogeneous subset and level, and store it with provenance.

Each stored :class:`~interphase.db.models.GPRModel` holds its hyperparameters,
the ids of the labels it was conditioned on and its full state, so any of its
predictions can be reproduced later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from interphase.db.models import GPRModel, Label, LevelOfTheory, Structure
from interphase.db.session import transaction
from interphase.gpr.gp import EnergyGradientGP

#: Subsets with fewer labeled structures get no GP (and count as uncertain).
MIN_SUBSET_SIZE = 4
#: Fraction of a subset held out to measure the GP's energy and force errors.
VALIDATION_FRACTION = 0.25


@dataclass
class SubsetData:
    """Labeled structures of one subset at one level, as arrays."""

    subset_key: str
    numbers: np.ndarray  # (N,)
    periodic: bool
    label_ids: np.ndarray  # (n,)
    positions_angstrom: np.ndarray  # (n, N, 3)
    energies_hartree: np.ndarray  # (n,)
    gradients_hartree_per_angstrom: np.ndarray  # (n, N, 3)


@dataclass
class SubsetFit:
    """Summary of one fitted subset GP."""

    subset_key: str
    level: str
    n_structures: int
    gpr_model_id: int
    hyperparameters: dict[str, float]
    energy_mae_per_atom_hartree: float | None
    force_mae_hartree_per_angstrom: float | None


def load_subsets(url: str | None, level: str, campaign_id: int | None = None) -> list[SubsetData]:
    """Energy+gradient labels at ``level`` grouped by subset key."""
    with transaction(url) as session:
        query = (
            select(
                Label.id, Structure, Label.total_energy_hartree, Label.gradient_hartree_per_angstrom
            )
            .join(Structure, Label.structure_id == Structure.id)
            .join(LevelOfTheory, Label.level_id == LevelOfTheory.id)
            .where(
                LevelOfTheory.name == level,
                Label.total_energy_hartree.is_not(None),
                Label.gradient_hartree_per_angstrom.is_not(None),
            )
            .order_by(Label.id)
        )
        if campaign_id is not None:
            query = query.where(Structure.campaign_id == campaign_id)
        groups: dict[str, list[tuple[int, Structure, float, np.ndarray]]] = defaultdict(list)
        for label_id, structure, energy, gradient in session.execute(query).all():
            groups[structure.subset_key].append((label_id, structure, energy, gradient))
    return [_subset_arrays(key, rows) for key, rows in sorted(groups.items())]


def _subset_arrays(key: str, rows: list[tuple[int, Structure, float, np.ndarray]]) -> SubsetData:
    # One subset shares composition and count, but atom order may differ between
    # structures: order every structure by atomic number so inputs line up.
    orders = [np.argsort(s.numbers, kind="stable") for _, s, _, _ in rows]
    first = rows[0][1]
    return SubsetData(
        subset_key=key,
        numbers=np.asarray(first.numbers)[orders[0]],
        periodic=first.pbc != "nnn",
        label_ids=np.array([r[0] for r in rows]),
        positions_angstrom=np.stack(
            [s.positions_angstrom[o] for (_, s, _, _), o in zip(rows, orders, strict=True)]
        ),
        energies_hartree=np.array([r[2] for r in rows]),
        gradients_hartree_per_angstrom=np.stack(
            [g[o] for (_, _, _, g), o in zip(rows, orders, strict=True)]
        ),
    )


def validation_errors(
    data: SubsetData, *, seed: int, training_iterations: int
) -> tuple[float | None, float | None]:
    """Energy MAE per atom and force MAE of a GP fitted without a held-out part."""
    n = len(data.label_ids)
    n_val = round(n * VALIDATION_FRACTION)
    if n - n_val < MIN_SUBSET_SIZE or n_val == 0:
        return None, None
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    gp = EnergyGradientGP(data.numbers, data.periodic, training_iterations, seed).fit(
        data.positions_angstrom[train],
        data.energies_hartree[train],
        data.gradients_hartree_per_angstrom[train],
    )
    predicted = gp.predict(data.positions_angstrom[val])
    n_atoms = len(data.numbers)
    energy_mae = (
        float(np.mean(np.abs(predicted.energy_hartree - data.energies_hartree[val]))) / n_atoms
    )
    force_mae = float(
        np.mean(
            np.abs(
                predicted.gradient_hartree_per_angstrom - data.gradients_hartree_per_angstrom[val]
            )
        )
    )
    return energy_mae, force_mae


def fit_subset_gps(
    url: str | None,
    level: str,
    *,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    training_iterations: int = 60,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[SubsetFit]:
    """Fit and store one GP per subset with at least :data:`MIN_SUBSET_SIZE` labels."""
    fits = []
    for data in load_subsets(url, level, campaign_id):
        if len(data.label_ids) < MIN_SUBSET_SIZE:
            continue
        if progress is not None:
            progress(data.subset_key)
        energy_mae, force_mae = validation_errors(
            data, seed=seed, training_iterations=training_iterations
        )
        gp = EnergyGradientGP(data.numbers, data.periodic, training_iterations, seed).fit(
            data.positions_angstrom, data.energies_hartree, data.gradients_hartree_per_angstrom
        )
        metrics = {
            "validation_energy_mae_per_atom_hartree": energy_mae,
            "validation_force_mae_hartree_per_angstrom": force_mae,
            "n_structures": len(data.label_ids),
        }
        with transaction(url) as session:
            level_row = session.scalars(
                select(LevelOfTheory).where(LevelOfTheory.name == level)
            ).one()
            model = GPRModel(
                level_id=level_row.id,
                subset_key=data.subset_key,
                hyperparameters=gp.hyperparameters(),
                descriptor={
                    "kind": "cartesian",
                    "aligned": not data.periodic,
                    "atom_order": "by Z",
                },
                training_label_ids=data.label_ids,
                metrics=metrics,
                state=gp.to_bytes(),
                campaign_id=campaign_id,
                iteration_id=iteration_id,
            )
            session.add(model)
            session.flush()
            model_id = model.id
        fits.append(
            SubsetFit(
                subset_key=data.subset_key,
                level=level,
                n_structures=len(data.label_ids),
                gpr_model_id=model_id,
                hyperparameters=gp.hyperparameters(),
                energy_mae_per_atom_hartree=energy_mae,
                force_mae_hartree_per_angstrom=force_mae,
            )
        )
    return fits
