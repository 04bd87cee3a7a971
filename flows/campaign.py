"""Prefect flow and tasks of one active-learning iteration (the walking skeleton).

Import this module only after :func:`flows.runtime.configure_local_prefect`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from rich.console import Console

from flows.demo import DemoConfig
from flows.runtime import step
from interphase.campaign import create_campaign, finish_iteration, level_id, start_iteration
from interphase.db.api import create_jobs, store_structures
from interphase.db.models import LevelOfTheory
from interphase.db.session import transaction
from interphase.gpr.fit import GPFitSettings, SubsetFit, fit_subset_gps
from interphase.gpr.score import CandidateScores, queue_uncertain, score_candidates
from interphase.labeling.queue import DrainReport, run_pending_jobs
from interphase.settings import get_settings
from interphase.structures.lattice import LatticeNoiseParams, lattice_noise_clusters
from interphase.training.from_db import metrics_json, train_from_database
from interphase.training.trainer import TrainingConfig


@task(cache_policy=NO_CACHE)
def generate_clusters(
    campaign_id: int, iteration_id: int, params: LatticeNoiseParams, n: int, seed: int, role: str
) -> list[int]:
    """Store ``n`` Li lattice-noise clusters; returns their structure ids."""
    records = lattice_noise_clusters(n, params, seed)
    with transaction() as session:
        result = store_structures(
            session,
            records,
            generator="lattice_noise",
            generator_params={**params.as_dict(), "role": role},
            seeds=[seed] * n,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
    return result.ids


@task(cache_policy=NO_CACHE)
def queue_initial_jobs(
    structure_ids: list[int], level: str, campaign_id: int, iteration_id: int
) -> int:
    with transaction() as session:
        level_row = session.get_one(LevelOfTheory, level_id(None, level))
        return len(
            create_jobs(
                session,
                structure_ids,
                level_row,
                campaign_id=campaign_id,
                iteration_id=iteration_id,
            )
        )


@task(cache_policy=NO_CACHE)
def label_pending(level: str) -> DrainReport:
    return run_pending_jobs(level_id=level_id(None, level))


@task(cache_policy=NO_CACHE)
def fit_gps(level: str, campaign_id: int, iteration_id: int, config: DemoConfig) -> list[SubsetFit]:
    return fit_subset_gps(
        None,
        level,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
        settings=GPFitSettings(training_iterations=config.gp_iterations, seed=config.seed),
        workers=config.gp_workers,
    )


@task(cache_policy=NO_CACHE)
def score(candidate_ids: list[int], level: str) -> CandidateScores:
    return score_candidates(None, candidate_ids, level)


@task(cache_policy=NO_CACHE)
def train(config: DemoConfig, campaign_id: int, iteration_id: int) -> dict[str, Any]:
    training = TrainingConfig(
        epochs=config.training_epochs,
        learning_rate=config.training_learning_rate,
        batch_size=config.training_batch_size,
        seed=config.seed,
    )
    run_id, result = train_from_database(
        None,
        training,
        get_settings().artifacts_dir,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
    )
    return {"training_run_id": run_id, "metrics": metrics_json(result)}


@flow(name="walking-skeleton", log_prints=False)
def walking_skeleton(config: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """One active-learning iteration on Li clusters; returns the report data."""
    console = console or Console(quiet=True)
    report: dict[str, Any] = {"config": config.model_dump()}
    campaign_id = create_campaign(None, config.campaign_name, config.model_dump(), [config.level])
    iteration_id = start_iteration(None, campaign_id)
    report["campaign_id"] = campaign_id

    initial: list[int] = []
    candidates: list[int] = []
    with step(console, "generate Li lattice-noise clusters") as note:
        for k, size in enumerate(config.cluster_sizes):
            params = LatticeNoiseParams(n_atoms=size, noise_angstrom=config.noise_angstrom)
            base = config.seed * 1000 + 10 * k
            initial += generate_clusters(
                campaign_id, iteration_id, params, config.n_initial, base, "initial"
            )
            candidates += generate_clusters(
                campaign_id, iteration_id, params, config.n_candidates, base + 1, "candidate"
            )
        note["text"] = f"{len(initial)} to label, {len(candidates)} candidates"

    with step(console, f"label with {config.level} (tblite)") as note:
        queue_initial_jobs(initial, config.level, campaign_id, iteration_id)
        drained = label_pending(config.level)
        note["text"] = f"{drained.succeeded} succeeded, {drained.failed} failed"

    with step(console, "fit one GP per subset (energies + forces)") as note:
        report["gp_first"] = fit_gps(config.level, campaign_id, iteration_id, config)
        note["text"] = f"{len(report['gp_first'])} subsets"

    with step(console, "score candidates by GP std and label the most uncertain") as note:
        before = score(candidates, config.level)
        job_ids = queue_uncertain(
            None,
            before,
            config.level,
            threshold_per_atom_hartree=config.threshold_per_atom_hartree,
            max_count=config.max_selected,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        drained_uncertain = label_pending(config.level)
        note["text"] = f"{len(job_ids)} selected, {drained_uncertain.succeeded} labeled"
    report["selected_job_ids"] = job_ids

    with step(console, "refit GPs with the new labels") as note:
        report["gp_second"] = fit_gps(config.level, campaign_id, iteration_id, config)
        after = score(candidates, config.level)
        note["text"] = f"{len(report['gp_second'])} subsets"
    report["candidate_std"] = {
        "before": _finite_mean(before.std_per_atom_hartree),
        "after": _finite_mean(after.std_per_atom_hartree),
    }

    with step(console, "train the multi-head network (CPU)") as note:
        report["training"] = train(config, campaign_id, iteration_id)
        note["text"] = f"run {report['training']['training_run_id']}"
    finish_iteration(None, iteration_id, _summary(report))
    return report


def _finite_mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "selected_jobs": len(report["selected_job_ids"]),
        "candidate_std_per_atom_hartree": report["candidate_std"],
        "training_run_id": report["training"]["training_run_id"],
    }
