"""Real data for the dashboard tests: structures, GFN2-xTB jobs through the queue, GPs, a model.

Everything is computed: tblite labels (milliseconds), failures that tblite
really produces (one SCF iteration: ``SCFNotConverged``; an unknown method:
``InvalidInput``), one GP per subset, GPR-ANN synthetic labels and a tiny
multi-head network trained for a few epochs on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.build import bulk
from sqlalchemy import func, select, update

from interphase.db.levels import get_or_create_level
from interphase.db.models import Campaign, Iteration, LabelingJob, Structure, utcnow
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.gpr.augment_db import augment_subsets
from interphase.gpr.fit import fit_subset_gps
from interphase.gpr.settings import GPFitSettings
from interphase.labeling.queue.enqueue import create_jobs
from interphase.labeling.queue.retry import RetryPolicy
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from interphase.records import StructureRecord
from interphase.structures.lattice import LatticeNoiseParams, lattice_noise_clusters
from interphase.training.from_db import train_from_database
from interphase.training.settings import TrainingSettings
from tests.labeling.job_helpers import waters
from tests.within import within

LEVEL = "GFN2-xTB"
#: A method tblite does not have: its jobs fail with InvalidInput, never retried.
BAD_LEVEL = "GFN9-xTB"
#: One SCF iteration cannot converge: SCFNotConverged (fixed by resubmitting with more).
ONE_ITERATION = {"max_iterations": 1}
NO_RETRY = WorkerOptions(retry=RetryPolicy.no_retries(), heartbeat_s=1.0, lease_s=60.0)
TINY_TRAINING = {
    "epochs": 15,
    "batch_size": 4,
    "validation_fraction": 0.25,
    "learning_rate": 0.01,
    "device": "cpu",
    "model": {"hidden_sizes": [8], "charge_hidden_sizes": [8]},
}


def create_campaign(url: str, name: str, config: dict[str, Any], levels: list[str]) -> int:
    """A bare campaign row (no configuration file, never run) and its levels; returns its id.

    The jobs views only need a campaign to file jobs under; the campaign views
    are tested on a real campaign run (``tests/dashboard/real_campaign.py``).
    """
    with transaction(url) as session:
        campaign = Campaign(name=name, config=config)
        session.add(campaign)
        for level in levels:
            get_or_create_level(session, level)
        session.flush()
        return campaign.id


def start_iteration(url: str, campaign_id: int) -> int:
    """Open the next iteration of a bare campaign; returns its id."""
    with transaction(url) as session:
        last = session.scalar(
            select(func.max(Iteration.index)).where(Iteration.campaign_id == campaign_id)
        )
        iteration = Iteration(campaign_id=campaign_id, index=0 if last is None else last + 1)
        session.add(iteration)
        session.flush()
        return iteration.id


def finish_iteration(url: str, iteration_id: int, summary: dict[str, Any]) -> None:
    with transaction(url) as session:
        iteration = session.get_one(Iteration, iteration_id)
        iteration.status, iteration.summary, iteration.finished_at = "succeeded", summary, utcnow()


@dataclass
class CampaignData:
    """Ids of what :func:`build_campaign` stored."""

    campaign_id: int
    iteration_id: int
    cluster_ids: list[int] = field(default_factory=list)
    water_ids: list[int] = field(default_factory=list)
    failed_job_ids: list[int] = field(default_factory=list)  # SCFNotConverged
    invalid_job_ids: list[int] = field(default_factory=list)  # InvalidInput
    training_run_id: int | None = None
    augmented_ids: list[int] = field(default_factory=list)
    periodic_id: int | None = None  # a bcc Li cell, stored without labels


def queue_waters(
    url: str,
    n: int,
    *,
    seed: int,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    settings: dict[str, object] | None = None,
    level: str = LEVEL,
) -> list[int]:
    """Store ``n`` water molecules and queue a job for each at ``level``; returns job ids."""
    with transaction(url) as session:
        ids = store_structures(
            session,
            waters(n, seed=seed),
            generator="molecule",
            generator_params={"molecule": "H2O", "rattle_angstrom": 0.01},
            seeds=[seed] * n,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        ).ids
        row = get_or_create_level(session, level)
        if level == BAD_LEVEL:
            row.engine, row.method = "tblite", BAD_LEVEL
        jobs = create_jobs(session, ids, row, campaign_id=campaign_id, iteration_id=iteration_id)
        for job in jobs:
            job.settings = {**job.settings, **(settings or {})}
        return [job.id for job in jobs]


def failed_waters(
    url: str, n: int, *, seed: int, campaign_id: int | None = None, iteration_id: int | None = None
) -> list[int]:
    """``n`` water jobs that really fail (one SCF iteration); returns their job ids."""
    ids = queue_waters(
        url,
        n,
        seed=seed,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
        settings=ONE_ITERATION,
    )
    report = run_pending_jobs(url, options=NO_RETRY)
    assert report.failed >= n, report
    return ids


def build_campaign(url: str, artifacts_dir: Path, name: str = "li-clusters") -> CampaignData:
    """A campaign with one iteration: clusters and waters labeled, failures, GP, model."""
    campaign_id = create_campaign(url, name, {"level": LEVEL}, [LEVEL])
    iteration_id = start_iteration(url, campaign_id)
    data = CampaignData(campaign_id, iteration_id)
    params = LatticeNoiseParams(n_atoms=4, noise_angstrom=0.05)
    with transaction(url) as session:
        data.cluster_ids = store_structures(
            session,
            lattice_noise_clusters(6, params, seed=3),
            generator="lattice_noise",
            generator_params=params.as_dict(),
            seeds=[3] * 6,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        ).ids
        level = get_or_create_level(session, LEVEL)
        create_jobs(
            session, data.cluster_ids, level, campaign_id=campaign_id, iteration_id=iteration_id
        )
    queue_waters(url, 5, seed=11, campaign_id=campaign_id, iteration_id=iteration_id)
    data.periodic_id = store_bcc_cell(url, campaign_id)
    run_pending_jobs(url, options=WorkerOptions(heartbeat_s=1.0))  # retries rescue Li SCFs
    data.failed_job_ids = failed_waters(
        url, 3, seed=12, campaign_id=campaign_id, iteration_id=iteration_id
    )
    data.invalid_job_ids = queue_waters(
        url, 1, seed=13, campaign_id=campaign_id, iteration_id=iteration_id, level=BAD_LEVEL
    )
    run_pending_jobs(url, options=NO_RETRY)
    fit_subset_gps(
        url,
        LEVEL,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
        settings=GPFitSettings(training_iterations=5),
    )
    within(url, augment_subsets, LEVEL, copies=2, delta_angstrom=0.03)
    with transaction(url) as session:
        augmented = select(Structure.id).where(Structure.generator == "gpr-augment")
        data.augmented_ids = list(session.scalars(augmented.order_by(Structure.id)))
    data.training_run_id, _ = train_from_database(
        url,
        TrainingSettings.model_validate(TINY_TRAINING),
        artifacts_dir,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
    )
    # GPR-ANN: energies only, reference and GP-synthetic (the run that uses the GPs).
    train_from_database(
        url,
        TrainingSettings.model_validate({**TINY_TRAINING, "mode": "energy_only"}),
        artifacts_dir,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
    )
    finish_iteration(url, iteration_id, {"note": "dashboard test data"})
    return data


def store_bcc_cell(url: str, campaign_id: int | None = None) -> int:
    """A periodic bcc Li cell (2 atoms, a = 3.44 Å); returns its structure id."""
    cell = bulk("Li", "bcc", a=3.44, cubic=True)
    record = StructureRecord(
        numbers=cell.numbers,
        positions_angstrom=cell.positions,
        cell_angstrom=np.asarray(cell.cell[:]),
        pbc=(True, True, True),
    )
    with transaction(url) as session:
        stored = store_structures(
            session,
            [record],
            generator="lattice_noise",
            generator_params={"packing": "bcc", "kind": "bulk"},
            campaign_id=campaign_id,
        )
        return stored.ids[0]


def set_error_message(url: str, job_id: int, message: str) -> None:
    """Store ``message`` as a job's error message (for the escaping tests)."""
    with transaction(url) as session:
        session.execute(
            update(LabelingJob).where(LabelingJob.id == job_id).values(error_message=message)
        )
