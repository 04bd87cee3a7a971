"""Fit one local GP per homogeneous subset and level, and store it with provenance.

Each subset (:mod:`interphase.gpr.subsets`) gets its own GP per level of
theory, fitted independently — in parallel processes when asked
(``workers`` > 1). Each stored :class:`~interphase.db.models.GPRModel` holds its
hyperparameters, the ids of the labels it was conditioned on, its descriptor
settings, its memory plan, its validation errors and its full state, so any
prediction can be reproduced later (:func:`load_gp`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.db.models import GPRModel, LevelOfTheory
from interphase.db.session import transaction
from interphase.execution import map_in_processes
from interphase.gpr.descriptors import soap_feature_count
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.memory import plan_for_device, plan_training_indices
from interphase.gpr.persistence import gp_from_bytes, gp_to_bytes
from interphase.gpr.settings import GPFitSettings
from interphase.gpr.subsets import SubsetData, aligned_inputs, load_subsets
from interphase.units import HARTREE_TO_MEV

__all__ = [
    "FittedSubset",
    "GPRFitError",
    "GPRModelNotFoundError",
    "SubsetData",
    "SubsetFit",
    "fit_subset",
    "fit_subset_gps",
    "fit_subsets",
    "fittable",
    "load_gp",
    "load_subsets",
    "store_fits",
]

#: Subsets with fewer labeled structures get no GP (and count as uncertain).
MIN_SUBSET_SIZE = 4
#: Fraction of a subset held out to measure the GP's energy and force errors.
VALIDATION_FRACTION = 0.25


class GPRFitError(ValueError):
    """The requested level or subset has nothing to fit."""


class GPRModelNotFoundError(KeyError):
    """No stored GP has the requested id."""


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
    descriptor: str = "cartesian"
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class FittedSubset:
    """A subset GP fitted in memory, not yet stored (:func:`store_fits`)."""

    data: SubsetData
    state: bytes
    hyperparameters: dict[str, float]
    descriptor: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


def _new_gp(
    data: SubsetData, settings: GPFitSettings, max_outputs: int, max_hp: int
) -> EnergyGradientGP:
    return EnergyGradientGP(
        data.numbers,
        data.periodic,
        training_iterations=settings.training_iterations,
        seed=settings.seed,
        max_outputs=max_outputs,
        device=settings.device,
        descriptor=settings.descriptor_for(data.subset_key),
        restarts=settings.restarts,
        max_hyperparameter_outputs=max_hp,
        pbc=data.pbc,
    )


def _fit_gp(
    data: SubsetData, settings: GPFitSettings, max_outputs: int, max_hp: int
) -> EnergyGradientGP:
    return _new_gp(data, settings, max_outputs, max_hp).fit(
        data.positions_angstrom,
        data.energies_hartree,
        data.gradients_hartree_per_angstrom,
        data.cells_angstrom,
    )


def validation_errors(
    data: SubsetData, gp: EnergyGradientGP, settings: GPFitSettings
) -> tuple[float | None, float | None]:
    """Energy MAE per atom (Hartree) and force MAE (Hartree/Å) on a held-out quarter.

    A GP with the hyperparameters of ``gp`` (fitted on the whole subset) is
    conditioned on the other three quarters and predicts the held-out one. The
    four hyperparameters have seen the held-out structures, so this is slightly
    optimistic, but it costs one Cholesky instead of a second likelihood search.
    """
    n = len(data.label_ids)
    n_val = round(n * VALIDATION_FRACTION)
    if n - n_val < MIN_SUBSET_SIZE or n_val == 0:
        return None, None
    order = np.random.default_rng(settings.seed).permutation(n)
    held_out, kept = data.take(order[:n_val]), data.take(order[n_val:])
    conditioned = _new_gp(kept, settings, gp.max_outputs, gp.max_hyperparameter_outputs).fit(
        kept.positions_angstrom,
        kept.energies_hartree,
        kept.gradients_hartree_per_angstrom,
        kept.cells_angstrom,
        hyperparameters=gp.hyperparameters(),
    )
    predicted = conditioned.predict(held_out.positions_angstrom, held_out.cells_angstrom)
    energy_error = np.abs(predicted.energy_hartree - held_out.energies_hartree)
    gradient_error = np.abs(
        predicted.gradient_hartree_per_angstrom - held_out.gradients_hartree_per_angstrom
    )
    return float(energy_error.mean()) / data.n_atoms, float(gradient_error.mean())


def fit_subset(data: SubsetData, settings: GPFitSettings) -> FittedSubset:
    """Fit one subset GP (no database): memory plan, validation, final fit."""
    descriptor = settings.descriptor_for(data.subset_key)
    features = soap_feature_count(data.numbers, descriptor) if descriptor.kind == "soap" else 0
    plan = plan_for_device(settings.device, settings.memory_budget_gb, features)
    max_outputs = settings.max_outputs or plan.max_outputs
    max_hp = min(plan.max_hyperparameter_outputs, max_outputs)
    keep = plan_training_indices(
        aligned_inputs(data.positions_angstrom, data.periodic),
        data.n_atoms,
        max_outputs=max_outputs,
        policy=settings.oversize,
        subset_key=data.subset_key,
    )
    used = data.take(keep)
    gp = _fit_gp(used, settings, max_outputs, max_hp)
    energy_mae, force_mae = validation_errors(used, gp, settings)
    search = gp.search
    metrics: dict[str, Any] = {
        "validation_energy_mae_per_atom_hartree": energy_mae,
        "validation_force_mae_hartree_per_angstrom": force_mae,
        "validation_energy_mae_mev_per_atom": None
        if energy_mae is None
        else energy_mae * HARTREE_TO_MEV,
        "validation_force_mae_mev_per_angstrom": None
        if force_mae is None
        else force_mae * HARTREE_TO_MEV,
        "n_structures": len(used.label_ids),
        "n_available": len(data.label_ids),
        "subsampled": len(used.label_ids) < len(data.label_ids),
        "oversize_policy": settings.oversize,
        "n_outputs": len(used.label_ids) * (3 * used.n_atoms + 1),
        "memory_budget_gb": plan.budget_gb,
        "max_outputs": max_outputs,
        "max_hyperparameter_outputs": max_hp,
        "hyperparameter_structures": gp.hyperparameter_structures,
        "restart_losses": None if search is None else search.restart_losses,
        "device": str(gp.device),
    }
    stored_descriptor = {
        **descriptor.stored(),
        "aligned": descriptor.kind == "cartesian" and not data.periodic,
        "atom_order": "by Z",
        "numbers": [int(z) for z in data.numbers],
        "pbc": [bool(p) for p in data.pbc],
        "fit_settings": settings.model_dump(exclude={"descriptor", "descriptor_by_subset"}),
    }
    return FittedSubset(used, gp_to_bytes(gp), gp.hyperparameters(), stored_descriptor, metrics)


def _fit_subset_job(args: tuple[SubsetData, GPFitSettings]) -> FittedSubset:
    import torch

    torch.set_num_threads(1)  # one core per worker process
    return fit_subset(*args)


#: Applies a picklable function to items, results in input order (an executor's ``map``).
MapFunction = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]


def fittable(subsets: Sequence[SubsetData]) -> list[SubsetData]:
    """The subsets with enough labels for a GP (:data:`MIN_SUBSET_SIZE`)."""
    return [data for data in subsets if len(data.label_ids) >= MIN_SUBSET_SIZE]


def fit_subsets(
    subsets: Sequence[SubsetData],
    settings: GPFitSettings,
    *,
    workers: int = 1,
    map_fn: MapFunction | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[FittedSubset]:
    """Fit one GP per subset with at least :data:`MIN_SUBSET_SIZE` labels (no database).

    ``map_fn`` runs the fits elsewhere (an executor's ``map``: worker processes,
    a Dask cluster); by default they run in this process (``workers`` 1) or in
    ``workers`` spawned processes. Results are in subset order.
    """
    if workers < 1:
        raise GPRFitError(f"workers must be at least 1; got {workers}")
    todo = fittable(subsets)
    if map_fn is not None and todo:
        fitted: list[FittedSubset] = map_fn(_fit_subset_job, [(data, settings) for data in todo])
        if progress is not None:
            for one in fitted:
                progress(one.data.subset_key)
        return fitted
    fitted = []
    for one in _run_fits(todo, settings, workers):
        fitted.append(one)
        if progress is not None:
            progress(one.data.subset_key)
    return fitted


def store_fits(
    session: Session,
    level: str,
    fitted: Sequence[FittedSubset],
    *,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
) -> list[SubsetFit]:
    """Store fitted GPs as ``GPRModel`` rows in the caller's transaction."""
    if not fitted:
        return []
    level_row = session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == level)).one()
    return [_store_fit(session, level_row, one, campaign_id, iteration_id) for one in fitted]


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
    """Load, fit and store one GP per subset: the orchestration of ``interphase gpr fit``.

    The labels are read in one transaction, the fits run outside any (they may
    take minutes), and the models are stored together in a second one once
    every fit succeeded, so a failure leaves the database unchanged. A campaign
    step composes :func:`load_subsets`, :func:`fit_subsets` and
    :func:`store_fits` itself inside its own transaction.

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
    campaign_id, iteration_id
        Restrict to a campaign's structures and record the GP under them.
    progress
        Called with each subset key as its fit completes.

    Returns
    -------
    list[SubsetFit]
        One entry per fitted subset, in subset-key order.
    """
    settings = settings or GPFitSettings()
    if workers < 1:
        raise GPRFitError(f"workers must be at least 1; got {workers}")
    with transaction(url, read_only=True) as session:
        subsets = load_subsets(session, level, campaign_id, subset_keys)
    if subset_keys and not subsets:
        raise GPRFitError(
            f"no labels with energies and gradients at level {level!r} for subset(s) "
            f"{list(subset_keys)}; see `interphase status` for subsets that have labels"
        )
    fitted = fit_subsets(subsets, settings, workers=workers, progress=progress)
    if not fitted:
        return []
    with transaction(url) as session:
        return store_fits(
            session, level, fitted, campaign_id=campaign_id, iteration_id=iteration_id
        )


def _run_fits(
    todo: list[SubsetData], settings: GPFitSettings, workers: int
) -> Iterator[FittedSubset]:
    if workers <= 1 or len(todo) <= 1:
        yield from (fit_subset(data, settings) for data in todo)
        return
    # Spawned processes that die with this one (a killed parent leaves no fit running).
    yield from map_in_processes(_fit_subset_job, [(data, settings) for data in todo], workers)


def _store_fit(
    session: Session,
    level_row: LevelOfTheory,
    fitted: FittedSubset,
    campaign_id: int | None,
    iteration_id: int | None,
) -> SubsetFit:
    data = fitted.data
    model = GPRModel(
        level_id=level_row.id,
        subset_key=data.subset_key,
        hyperparameters=fitted.hyperparameters,
        descriptor=fitted.descriptor,
        training_label_ids=data.label_ids,
        metrics=fitted.metrics,
        state=fitted.state,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
    )
    session.add(model)
    session.flush()
    metrics = fitted.metrics
    return SubsetFit(
        subset_key=data.subset_key,
        level=level_row.name,
        n_structures=len(data.label_ids),
        gpr_model_id=model.id,
        hyperparameters=fitted.hyperparameters,
        energy_mae_per_atom_hartree=metrics["validation_energy_mae_per_atom_hartree"],
        force_mae_hartree_per_angstrom=metrics["validation_force_mae_hartree_per_angstrom"],
        n_available=int(metrics["n_available"]),
        subsampled=bool(metrics["subsampled"]),
        descriptor=str(fitted.descriptor["kind"]),
        metrics=metrics,
    )


def load_gp(session: Session, gpr_model_id: int, device: str | None = None) -> EnergyGradientGP:
    """The stored GP ``gpr_model_id``, predicting exactly as when it was fitted."""
    model = session.get(GPRModel, gpr_model_id)
    if model is None:
        raise GPRModelNotFoundError(
            f"no GP with id {gpr_model_id}; `interphase gpr fit` lists the stored ones"
        )
    return gp_from_bytes(model.state, device=device, gp_id=gpr_model_id)
