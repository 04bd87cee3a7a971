"""Fit one local GP per homogeneous subset and level, and store it with provenance.

A subset is the set of labeled structures sharing composition, atom count and
periodicity (:func:`interphase.records.subset_key`); each gets its own GP per
level of theory, fitted independently (in parallel processes when asked). Each
stored :class:`~interphase.db.models.GPRModel` holds its hyperparameters, the ids
of the labels it was conditioned on, its descriptor settings, its validation
errors and its full state, so any prediction can be reproduced later
(:func:`load_gp`).
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from interphase.db.models import GPRModel, Label, LevelOfTheory, Structure
from interphase.db.session import transaction
from interphase.gpr.gp import DEFAULT_MAX_OUTPUTS, EnergyGradientGP, kabsch_rotation
from interphase.gpr.memory import OversizePolicy, plan_training_indices

#: Subsets with fewer labeled structures get no GP (and count as uncertain).
MIN_SUBSET_SIZE = 4
#: Fraction of a subset held out to measure the GP's energy and force errors.
VALIDATION_FRACTION = 0.25


class GPRFitError(ValueError):
    """The requested level or subset has nothing to fit."""


class GPRModelNotFoundError(LookupError):
    """No stored GP has the requested id."""


@dataclass(frozen=True)
class GPFitSettings:
    """How each subset GP is fitted (stored with the model)."""

    training_iterations: int = 60
    seed: int = 0
    max_outputs: int = DEFAULT_MAX_OUTPUTS
    oversize: OversizePolicy = "subsample"
    device: str | None = None


@dataclass
class SubsetData:
    """Labeled structures of one subset at one level, as arrays (atoms sorted by Z)."""

    subset_key: str
    numbers: np.ndarray  # (N,)
    periodic: bool
    label_ids: np.ndarray  # (n,)
    structure_ids: np.ndarray  # (n,)
    positions_angstrom: np.ndarray  # (n, N, 3)
    energies_hartree: np.ndarray  # (n,)
    gradients_hartree_per_angstrom: np.ndarray  # (n, N, 3)

    def take(self, indices: np.ndarray) -> SubsetData:
        return SubsetData(
            self.subset_key,
            self.numbers,
            self.periodic,
            self.label_ids[indices],
            self.structure_ids[indices],
            self.positions_angstrom[indices],
            self.energies_hartree[indices],
            self.gradients_hartree_per_angstrom[indices],
        )


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
    n_available: int = 0
    subsampled: bool = False


@dataclass
class _FittedSubset:
    data: SubsetData
    state: bytes
    hyperparameters: dict[str, float]
    metrics: dict[str, object] = field(default_factory=dict)


def load_subsets(
    url: str | None,
    level: str,
    campaign_id: int | None = None,
    subset_keys: Sequence[str] | None = None,
) -> list[SubsetData]:
    """Energy+gradient labels at ``level`` grouped by subset key (reference labels only)."""
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
        if subset_keys:
            query = query.where(Structure.subset_key.in_(list(subset_keys)))
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
        structure_ids=np.array([r[1].id for r in rows]),
        positions_angstrom=np.stack(
            [s.positions_angstrom[o] for (_, s, _, _), o in zip(rows, orders, strict=True)]
        ),
        energies_hartree=np.array([r[2] for r in rows]),
        gradients_hartree_per_angstrom=np.stack(
            [g[o] for (_, _, _, g), o in zip(rows, orders, strict=True)]
        ),
    )


def aligned_inputs(positions_angstrom: np.ndarray, periodic: bool) -> np.ndarray:
    """Structures in a common frame: molecules centred and rotated onto the first."""
    if periodic:
        return np.asarray(positions_angstrom, dtype=np.float64)
    centred = positions_angstrom - positions_angstrom.mean(axis=1, keepdims=True)
    return np.stack([c @ kabsch_rotation(c, centred[0]) for c in centred])


def validation_errors(
    data: SubsetData, settings: GPFitSettings
) -> tuple[float | None, float | None]:
    """Energy MAE per atom (Hartree) and force MAE (Hartree/Å) on a held-out part."""
    n = len(data.label_ids)
    n_val = round(n * VALIDATION_FRACTION)
    if n - n_val < MIN_SUBSET_SIZE or n_val == 0:
        return None, None
    order = np.random.default_rng(settings.seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    gp = _new_gp(data, settings).fit(
        data.positions_angstrom[train],
        data.energies_hartree[train],
        data.gradients_hartree_per_angstrom[train],
    )
    predicted = gp.predict(data.positions_angstrom[val])
    n_atoms = len(data.numbers)
    energy_error = np.abs(predicted.energy_hartree - data.energies_hartree[val])
    gradient_error = np.abs(
        predicted.gradient_hartree_per_angstrom - data.gradients_hartree_per_angstrom[val]
    )
    return float(energy_error.mean()) / n_atoms, float(gradient_error.mean())


def _new_gp(data: SubsetData, settings: GPFitSettings) -> EnergyGradientGP:
    return EnergyGradientGP(
        data.numbers,
        data.periodic,
        training_iterations=settings.training_iterations,
        seed=settings.seed,
        max_outputs=settings.max_outputs,
        device=settings.device,
    )


def fit_subset(data: SubsetData, settings: GPFitSettings) -> _FittedSubset:
    """Fit one subset GP (no database): memory plan, validation, final fit."""
    n_available = len(data.label_ids)
    keep = plan_training_indices(
        aligned_inputs(data.positions_angstrom, data.periodic),
        len(data.numbers),
        max_outputs=settings.max_outputs,
        policy=settings.oversize,
        subset_key=data.subset_key,
    )
    used = data.take(keep)
    energy_mae, force_mae = validation_errors(used, settings)
    gp = _new_gp(used, settings).fit(
        used.positions_angstrom, used.energies_hartree, used.gradients_hartree_per_angstrom
    )
    metrics: dict[str, object] = {
        "validation_energy_mae_per_atom_hartree": energy_mae,
        "validation_force_mae_hartree_per_angstrom": force_mae,
        "n_structures": len(used.label_ids),
        "n_available": n_available,
        "subsampled": len(used.label_ids) < n_available,
        "n_outputs": len(used.label_ids) * (3 * len(used.numbers) + 1),
        "device": str(gp.device),
    }
    return _FittedSubset(used, gp.to_bytes(), gp.hyperparameters(), metrics)


def _fit_subset_job(args: tuple[SubsetData, GPFitSettings]) -> _FittedSubset:
    import torch

    torch.set_num_threads(1)  # one core per worker process
    return fit_subset(*args)


def fit_subset_gps(
    url: str | None,
    level: str,
    *,
    subset_keys: Sequence[str] | None = None,
    settings: GPFitSettings | None = None,
    workers: int = 1,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[SubsetFit]:
    """Fit and store one GP per subset with at least :data:`MIN_SUBSET_SIZE` labels.

    Parameters
    ----------
    url
        Database URL (``None``: the configured one).
    level
        Level-of-theory name whose reference labels are fitted.
    subset_keys
        Restrict to these subsets (default: every subset of the level).
    settings
        Fit settings; defaults of :class:`GPFitSettings`.
    workers
        Subsets fitted in parallel processes (1: in this process).
    progress
        Called with each subset key as its fit completes.
    """
    settings = settings or GPFitSettings()
    subsets = load_subsets(url, level, campaign_id, subset_keys)
    if subset_keys and not subsets:
        raise GPRFitError(
            f"no labels with energies and gradients at level {level!r} for subset(s) "
            f"{list(subset_keys)}; see `interphase status` for subsets that have labels"
        )
    todo = [data for data in subsets if len(data.label_ids) >= MIN_SUBSET_SIZE]
    fits = []
    for fitted in _run_fits(todo, settings, workers):
        fits.append(_store_fit(url, level, fitted, settings, campaign_id, iteration_id))
        if progress is not None:
            progress(fitted.data.subset_key)
    return fits


def _run_fits(todo: list[SubsetData], settings: GPFitSettings, workers: int):  # type: ignore[no-untyped-def]
    if workers <= 1 or len(todo) <= 1:
        yield from (fit_subset(data, settings) for data in todo)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_fit_subset_job, [(data, settings) for data in todo])


def _store_fit(
    url: str | None,
    level: str,
    fitted: _FittedSubset,
    settings: GPFitSettings,
    campaign_id: int | None,
    iteration_id: int | None,
) -> SubsetFit:
    data = fitted.data
    with transaction(url) as session:
        level_row = session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == level)).one()
        model = GPRModel(
            level_id=level_row.id,
            subset_key=data.subset_key,
            hyperparameters=fitted.hyperparameters,
            descriptor={
                "kind": "cartesian",
                "aligned": not data.periodic,
                "atom_order": "by Z",
                "numbers": [int(z) for z in data.numbers],
                "fit_settings": {
                    "training_iterations": settings.training_iterations,
                    "seed": settings.seed,
                    "max_outputs": settings.max_outputs,
                    "oversize": settings.oversize,
                },
            },
            training_label_ids=data.label_ids,
            metrics=fitted.metrics,
            state=fitted.state,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        session.add(model)
        session.flush()
        model_id = model.id
    metrics = fitted.metrics
    return SubsetFit(
        subset_key=data.subset_key,
        level=level,
        n_structures=len(data.label_ids),
        gpr_model_id=model_id,
        hyperparameters=fitted.hyperparameters,
        energy_mae_per_atom_hartree=metrics["validation_energy_mae_per_atom_hartree"],  # type: ignore[arg-type]
        force_mae_hartree_per_angstrom=metrics["validation_force_mae_hartree_per_angstrom"],  # type: ignore[arg-type]
        n_available=int(metrics["n_available"]),  # type: ignore[call-overload]
        subsampled=bool(metrics["subsampled"]),
    )


def load_gp(url: str | None, gpr_model_id: int, device: str | None = None) -> EnergyGradientGP:
    """The stored GP ``gpr_model_id``, predicting exactly as when it was fitted."""
    with transaction(url) as session:
        model = session.get(GPRModel, gpr_model_id)
        if model is None:
            raise GPRModelNotFoundError(
                f"no GP with id {gpr_model_id}; `interphase gpr fit` lists the stored ones"
            )
        state = model.state
    return EnergyGradientGP.from_bytes(state, device=device)
