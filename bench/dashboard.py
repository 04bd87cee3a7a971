"""Server time of every dashboard page on a large PostgreSQL database.

Fills a fresh scratch database with 200,000 structures (160,000 lattice-noise
clusters and molecules, 40,000 GPR-augmented children), 100,000 labeling jobs
over three levels, three campaigns and 30 iterations (80 % succeeded, 15 %
failed under 24 error messages, pending, running with live and expired leases,
cancelled), their attempts, a label per succeeded job, 20 GPs, 40,000 synthetic
labels and 5 training runs with 100 epochs of metrics each. Structures go in
through :func:`interphase.db.structures.store_structures`, everything else through the
same COPY path (``interphase.db.bulk.bulk_insert``).

Then each page is requested through FastAPI's TestClient (in-process, so the
time is the server's: routing, queries, template) after one warm-up request,
and the median and maximum of ``--repeat`` requests are printed as a table and
JSON.

    INTERPHASE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/dashboard.py [--jobs 100000] [--structures 200000] [--keep]

``--revision 0003`` migrates the scratch database only that far (without the
dashboard's indexes of migration 0004d), to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np

SCRATCH_DB = "interphase_bench_dashboard"
LEVELS = (("GFN2-xTB", "tblite"), ("PBE-D3", "gpaw"), ("wB97X-D3BJ_def2-TZVPD", "pyscf"))
ERRORS = {
    "SCFNotConverged": [f"SCF not converged in {n} cycles" for n in (50, 100, 250, 500, 1000)],
    "Timeout": [f"time limit of {t} s exceeded" for t in (600, 3600, 7200, 86400)],
    "EngineCrashed": [f"engine process killed by signal {s}" for s in ("SIGKILL", "SIGSEGV")]
    + ["out of memory: peak 8000 MB over the 7000 MB limit"],
    "InvalidInput": [f"tblite refused the input: bad element {e}" for e in ("Xx", "Q")],
    "LeaseExpired": [f"worker node{k:02d}:123 stopped renewing its lease" for k in range(10)],
}


def _admin(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def _copy(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    from interphase.db.bulk import bulk_insert

    for start in range(0, len(rows), 20000):
        bulk_insert(session, model.__table__, rows[start : start + 20000])


def _structures(url: str, n_base: int, n_augmented: int, campaigns: list[int]) -> list[int]:
    """Store the structures; returns the base ids (augmented children follow them)."""
    from interphase.db.session import transaction
    from interphase.db.structures import store_structures
    from interphase.records import StructureRecord

    rng = np.random.default_rng(0)
    base_ids: list[int] = []
    template = rng.normal(scale=1.6, size=(8, 3))
    batch = 10000
    for start in range(0, n_base, batch):
        n = min(batch, n_base - start)
        records = [
            StructureRecord(
                numbers=np.full(8, 3),
                positions_angstrom=template + rng.normal(scale=0.1, size=(8, 3)),
            )
            for _ in range(n)
        ]
        campaign = campaigns[(start // batch) % len(campaigns)]
        with transaction(url) as session:
            base_ids += store_structures(
                session,
                records,
                generator="lattice_noise" if start % 3 else "molecule",
                generator_params={"n_atoms": 8, "noise_angstrom": 0.1},
                seeds=[start + k for k in range(n)],
                campaign_id=campaign,
            ).ids
    parents = rng.choice(base_ids[: len(base_ids) // 2], size=n_augmented)
    for start in range(0, n_augmented, batch):
        chunk = parents[start : start + batch]
        records = [
            StructureRecord(
                numbers=np.full(8, 3),
                positions_angstrom=template + rng.normal(scale=0.1, size=(8, 3)),
            )
            for _ in chunk
        ]
        with transaction(url) as session:
            store_structures(
                session,
                records,
                generator="gpr-augment",
                generator_params={"delta_angstrom": 0.034, "copies": 20},
                parent_ids=[int(p) for p in chunk],
            )
    return base_ids


def _job_rows(
    rng: np.random.Generator,
    structure_ids: list[int],
    levels: list[int],
    iterations: list[tuple[int, int]],
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    errors = [(cls, msg) for cls, messages in ERRORS.items() for msg in messages]
    states = rng.choice(
        ["succeeded", "failed", "pending", "running", "cancelled"],
        size=len(structure_ids),
        p=[0.8, 0.15, 0.03, 0.015, 0.005],
    )
    rows = []
    for k, (structure_id, state) in enumerate(zip(structure_ids, states, strict=True)):
        campaign_id, iteration_id = iterations[k * len(iterations) // len(structure_ids)]
        error_class, message = (
            errors[int(rng.integers(len(errors)))] if state == "failed" else (None, None)
        )
        running = state == "running"
        lease = now + timedelta(seconds=float(rng.uniform(-600, 300))) if running else None
        rows.append(
            {
                "structure_id": structure_id,
                "level_id": levels[k % len(levels)],
                "state": state,
                "reason": "initial" if k % 5 else "uncertainty",
                "reason_detail": {},
                "attempt": 0 if state == "pending" else 1 + int(rng.integers(3)),
                "settings": {"max_iterations": 250},
                "error_class": error_class,
                "error_message": message,
                "campaign_id": campaign_id,
                "iteration_id": iteration_id,
                "worker": f"node{k % 16:02d}:{1000 + k % 97}:abc" if state != "pending" else None,
                "lease_expires_at": lease,
                "heartbeat_at": lease - timedelta(seconds=300) if lease else None,
                "created_at": now - timedelta(seconds=len(structure_ids) - k),
                "updated_at": now - timedelta(seconds=len(structure_ids) - k),
            }
        )
    return rows


def _attempt_rows(jobs: list[tuple[int, str, int, str | None, str | None]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for job_id, state, n, error_class, message in jobs:
        for number in range(1, n + 1):
            last = number == n
            rows.append(
                {
                    "job_id": job_id,
                    "number": number,
                    "state": state if last else "failed",
                    "engine": "tblite",
                    "engine_version": "0.8.0",
                    "settings": {"max_iterations": 250},
                    "host": "node",
                    "worker": "node:1:abc",
                    "trigger": "initial" if number == 1 else "retry",
                    "pid": 1000 + number,
                    "exit_code": 0,
                    "started_at": now,
                    "finished_at": now,
                    "wall_time_s": 1.5,
                    "error_class": error_class if last else "SCFNotConverged",
                    "error_message": message if last else "SCF not converged in 250 cycles",
                    "log_tail": "iteration 250 energy -40.1 delta 1e-4\n" * 20,
                }
            )
    return rows


@dataclass
class Stored:
    """Ids the filling steps hand on to each other."""

    campaigns: list[int]
    iterations: list[tuple[int, int]]  # (campaign id, iteration id)
    levels: list[int]
    jobs: list[Any] = field(default_factory=list)  # (id, state, attempts, class, message)
    labeled: list[Any] = field(default_factory=list)  # (job id, structure id, level id)
    label_ids: Any = None
    augmented: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)


def _campaigns_and_levels(session: Any) -> Stored:
    from interphase.db.levels import get_or_create_level
    from interphase.db.models import Campaign, Iteration

    campaigns = [Campaign(name=f"campaign-{k}", config={}) for k in range(3)]
    session.add_all(campaigns)
    session.flush()
    iterations = [Iteration(campaign_id=c.id, index=i) for c in campaigns for i in range(10)]
    session.add_all(iterations)
    levels = [get_or_create_level(session, name) for name, _ in LEVELS]
    for level, (_, engine) in zip(levels, LEVELS, strict=True):
        level.engine = engine
    session.flush()
    return Stored(
        [c.id for c in campaigns],
        [(it.campaign_id, it.id) for it in iterations],
        [level.id for level in levels],
    )


def _jobs_and_labels(
    session: Any, stored: Stored, structure_ids: list[int], rng: np.random.Generator
) -> None:
    from sqlalchemy import select

    from interphase.db.models import JobAttempt, Label, LabelingJob

    rows = _job_rows(rng, structure_ids, stored.levels, stored.iterations)
    _copy(session, LabelingJob, rows)
    stored.jobs = session.execute(
        select(
            LabelingJob.id,
            LabelingJob.state,
            LabelingJob.attempt,
            LabelingJob.error_class,
            LabelingJob.error_message,
        ).order_by(LabelingJob.id)
    ).all()
    _copy(session, JobAttempt, _attempt_rows([tuple(j) for j in stored.jobs]))
    stored.labeled = session.execute(
        select(LabelingJob.id, LabelingJob.structure_id, LabelingJob.level_id).where(
            LabelingJob.state == "succeeded"
        )
    ).all()
    gradient = np.zeros((8, 3)).tobytes()
    label_rows = [
        {
            "structure_id": sid,
            "level_id": lid,
            "job_id": jid,
            "total_energy_hartree": -59.8 + float(rng.normal(scale=0.01)),
            "atomization_energy_hartree": None,
            "gradient_hartree_per_angstrom": gradient,
            "charges_e": None,
            "dipole_e_angstrom": None,
            "provenance": {"engine": "tblite"},
        }
        for jid, sid, lid in stored.labeled
    ]
    _copy(session, Label, label_rows)
    stored.label_ids = np.asarray(session.scalars(select(Label.id).order_by(Label.id)).all())


def _gps_and_synthetic_labels(session: Any, stored: Stored, rng: np.random.Generator) -> Any:
    """20 GPs and a synthetic label per augmented structure; returns the synthetic ids."""
    from sqlalchemy import select

    from interphase.db.models import GPRModel, Structure, SyntheticLabel
    from interphase.records import subset_key_of

    gps = [
        GPRModel(
            level_id=stored.levels[0],
            subset_key=subset_key_of("Li8", 8, (False, False, False)),
            training_label_ids=rng.choice(stored.label_ids, size=min(4000, len(stored.label_ids))),
            state=b"\0" * 1000,
            campaign_id=stored.campaigns[k % 3],
        )
        for k in range(20)
    ]
    session.add_all(gps)
    session.flush()
    stored.augmented = list(
        session.scalars(select(Structure.id).where(Structure.generator == "gpr-augment"))
    )
    synthetic_rows = [
        {
            "structure_id": sid,
            "level_id": stored.levels[0],
            "gpr_model_id": gps[k % len(gps)].id,
            "energy_hartree": -59.8,
            "energy_std_hartree": 1e-4,
        }
        for k, sid in enumerate(stored.augmented)
    ]
    _copy(session, SyntheticLabel, synthetic_rows)
    return np.asarray(session.scalars(select(SyntheticLabel.id)).all())


def _epoch_rows(run_id: int, heads: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for epoch in range(1, 101):
        for split in ("train", "validation"):
            rows.append(
                {"training_run_id": run_id, "epoch": epoch, "split": split, "loss": 1 / epoch}
            )
            rows += [
                {
                    "training_run_id": run_id,
                    "epoch": epoch,
                    "split": split,
                    "head": head,
                    "n_energies": 60000,
                    "energy_mae_mev_per_atom": 10 / epoch,
                    "n_forces": 480000,
                    "force_mae_mev_per_angstrom": 100 / epoch,
                }
                for head in heads
            ]
    return rows


def _training_runs(session: Any, stored: Stored, synthetic_ids: Any, artifacts: Path) -> None:
    from interphase.db.models import ModelArtifact, TrainingEpochMetric, TrainingRun

    heads = [LEVELS[0][0], LEVELS[1][0]]
    for k in range(5):
        run = TrainingRun(
            config={"epochs": 100, "batch_size": 128},
            heads=heads,
            label_ids=stored.label_ids,
            synthetic_label_ids=synthetic_ids if k % 2 else np.zeros(0, dtype=np.int64),
            status="succeeded",
            campaign_id=stored.campaigns[k % 3],
            epochs_completed=100,
            best_epoch=90,
            metrics={"heads": {}},
        )
        session.add(run)
        session.flush()
        _copy(session, TrainingEpochMetric, _epoch_rows(run.id, heads))
        path = artifacts / f"training-run-{run.id}.pt"
        path.write_bytes(b"model")
        session.add(ModelArtifact(training_run_id=run.id, path=str(path), sha256="0" * 64))
        stored.runs.append(run.id)


def fill(url: str, n_jobs: int, n_structures: int, artifacts: Path) -> dict[str, int]:
    """Fill the database; returns ids of rows worth timing (a busy job, structure, run)."""
    from interphase.db.session import transaction

    rng = np.random.default_rng(1)
    with transaction(url) as session:
        stored = _campaigns_and_levels(session)
    n_augmented = n_structures // 5
    base = _structures(url, n_structures - n_augmented, n_augmented, stored.campaigns)
    with transaction(url) as session:
        _jobs_and_labels(session, stored, base[:n_jobs], rng)
        synthetic_ids = _gps_and_synthetic_labels(session, stored, rng)
        _training_runs(session, stored, synthetic_ids, artifacts)
    return {
        "job": int(next(j for j in stored.jobs if j[2] == 3)[0]),
        "structure": int(stored.labeled[0][1]),
        "augmented": int(stored.augmented[0]),
        "run": int(stored.runs[1]),
        "campaign": int(stored.campaigns[1]),
        "iteration": int(stored.iterations[15][1]),
        "middle_job": int(stored.jobs[len(stored.jobs) // 2][0]),
        "middle_structure": int(base[len(base) // 2]),
    }


def pages(ids: dict[str, int]) -> dict[str, str]:
    return {
        "campaigns": "/campaigns",
        "jobs": "/jobs",
        "jobs failed": "/jobs?state=failed",
        "jobs error class": "/jobs?error_class=Timeout",
        "jobs campaign + iteration": (
            f"/jobs?campaign={ids['campaign']}&iteration={ids['iteration']}"
        ),
        "jobs level + engine": "/jobs?level=PBE-D3&engine=gpaw",
        "jobs message text": "/jobs?message=not+converged",
        "jobs deep page": f"/jobs?before={ids['middle_job']}",
        "jobs live fragment": "/jobs/live?state=failed",
        "job detail (3 attempts)": f"/jobs/{ids['job']}",
        "structures": "/structures",
        "structures generator": "/structures?generator=gpr-augment",
        "structures deep page": f"/structures?before={ids['middle_structure']}",
        "structure (labeled, GPs, runs)": f"/structures/{ids['structure']}",
        "structure (augmented)": f"/structures/{ids['augmented']}",
        "structure extxyz": f"/structures/{ids['structure']}/extxyz",
        "models": "/models",
        "model detail (100 epochs)": f"/models/{ids['run']}",
    }


def time_pages(url: str, ids: dict[str, int], repeat: int) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from interphase.dashboard.app import create_app

    results = []
    with TestClient(create_app(url, token="bench-token-0123456789")) as client:
        for name, path in pages(ids).items():
            response = client.get(path)  # warm-up (and a check)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                client.get(path)
                times.append((time.perf_counter() - start) * 1000)
            results.append(
                {
                    "page": name,
                    "path": path,
                    "median_ms": statistics.median(times),
                    "max_ms": max(times),
                    "bytes": len(response.content),
                }
            )
        preview = {"scope": "matching", "state": "failed", "error_class": "Timeout"}
        times = []
        for _ in range(3):
            start = time.perf_counter()
            response = client.post("/jobs/resubmit/preview", data=preview)
            times.append((time.perf_counter() - start) * 1000)
        results.append(
            {
                "page": "resubmit preview (Timeout failures)",
                "path": "POST /jobs/resubmit/preview",
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "bytes": len(response.content),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100000)
    parser.add_argument("--structures", type=int, default=200000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--revision", default="head", help="schema revision to migrate to")
    parser.add_argument("--postgres-url", default=os.environ.get("INTERPHASE_TEST_POSTGRES_URL"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if not args.postgres_url:
        sys.exit("error: give --postgres-url or set INTERPHASE_TEST_POSTGRES_URL (an admin URL)")
    from sqlalchemy.engine import make_url

    from interphase.db.session import make_engine, upgrade

    url = make_url(args.postgres_url).set(database=SCRATCH_DB).render_as_string(False)
    _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    _admin(args.postgres_url, f"CREATE DATABASE {SCRATCH_DB}")
    try:
        upgrade(url, args.revision)
        with tempfile.TemporaryDirectory() as artifacts:
            start = time.perf_counter()
            ids = fill(url, args.jobs, args.structures, Path(artifacts))
            fill_s = time.perf_counter() - start
            with make_engine(url).connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
            results = time_pages(url, ids, args.repeat)
        make_engine(url).dispose()
    finally:
        if not args.keep:
            make_engine(url).dispose()
            _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    print(f"filled {args.structures:,} structures and {args.jobs:,} jobs in {fill_s:.0f} s")
    print(
        f"| page | median ms | max ms | KiB |  ({args.repeat} requests, revision {args.revision})"
    )
    print("|---|---:|---:|---:|")
    for row in results:
        kib = row["bytes"] / 1024
        print(f"| {row['page']} | {row['median_ms']:.0f} | {row['max_ms']:.0f} | {kib:.0f} |")
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "revision": args.revision,
        "results": results,
    }
    print(json.dumps(cast(dict[str, Any], summary)))


if __name__ == "__main__":
    main()
