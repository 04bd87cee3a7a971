"""Server time of the campaign and iteration pages of a large campaign.

Fills a fresh scratch database (PostgreSQL, or SQLite with ``--sqlite``) with
one campaign of ``--iterations`` iterations (default 20), each with
``--scores`` candidate scores (default 5,000: half scored for selection, half
for the next pool, over two levels, a few without a GP), 1,000 new structures,
1,000 + 40 labeling jobs and their labels, the ten step rows (the generate
step's outputs list its 1,000 candidate ids), 10 GPs, 400 synthetic labels and
one training run with 100 epochs of per-head metrics and a parity file
(2,000 energies and 16,000 force rows per split and head). Rows go in through
``interphase.db.bulk.bulk_insert`` (COPY on PostgreSQL).

Each page is requested in-process through FastAPI's TestClient (server time:
routing, queries, template) after one warm-up request; the median and maximum
of ``--repeat`` requests are printed as a table and JSON.

    INTERPHASE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/dashboard_campaign.py [--iterations 20] [--scores 5000] [--sqlite]
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SCRATCH_DB = "interphase_bench_dashboard_campaign"
LEVELS = ("GFN2-xTB", "GFN1-xTB")
STEPS = (
    "generate", "label", "fit", "select", "refit", "augment", "train", "explore", "evaluate",
    "summary",
)  # fmt: skip
CONFIG = {
    "name": "bench",
    "routing": [{"level": "GFN2-xTB", "mode": "all"}, {"level": "GFN1-xTB", "mode": "selected"}],
    "selection": {"default_threshold_mev_per_atom": 2.0},
}
STRUCTURES_PER_ITERATION = 1000


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


def _structures(session: Any, campaign_id: int, iteration_id: int, seed: int) -> list[int]:
    from interphase.db.structures import store_structures
    from interphase.records import StructureRecord

    rng = np.random.default_rng(seed)
    template = rng.normal(scale=1.6, size=(8, 3))
    records = [
        StructureRecord(
            numbers=np.full(8, 3), positions_angstrom=template + rng.normal(scale=0.1, size=(8, 3))
        )
        for _ in range(STRUCTURES_PER_ITERATION)
    ]
    return store_structures(
        session,
        records,
        generator="lattice_noise" if seed % 2 else "md",
        generator_params={"n_atoms": 8},
        seeds=list(range(len(records))),
        campaign_id=campaign_id,
        iteration_id=iteration_id,
    ).ids


def _scores(
    campaign_id: int, iteration_id: int, ids: list[int], levels: list[int], n: int, rng: Any
) -> list[dict[str, Any]]:
    rows = []
    std = rng.lognormal(mean=np.log(1.5e-3 / 27.2114), sigma=1.0, size=n)  # Hartree per atom
    for k in range(n):
        stage = "select" if k < n // 2 else "pool"
        value = None if k % 500 == 7 else float(std[k])
        rows.append(
            {
                "campaign_id": campaign_id,
                "iteration_id": iteration_id,
                "structure_id": ids[k % len(ids)],
                "level_id": levels[k % 2],
                "gpr_model_id": None,
                "std_per_atom_hartree": value,
                "stage": stage,
                "uncertain": value is None or value * 27211.4 > 2.0,
                "picked": stage == "select" and k < 40,
            }
        )
    return rows


def _jobs_and_labels(
    session: Any, campaign_id: int, iteration_id: int, ids: list[int], levels: list[int]
) -> None:
    from sqlalchemy import select

    from interphase.db.models import Label, LabelingJob

    jobs = [
        {
            "structure_id": sid,
            "level_id": levels[0] if k < len(ids) else levels[1],
            "state": "succeeded" if k % 50 else "failed",
            "reason": "routing" if k < len(ids) else "uncertainty",
            "reason_detail": {},
            "attempt": 1,
            "settings": {},
            "error_class": None if k % 50 else "SCFNotConverged",
            "error_message": None if k % 50 else "SCF not converged in 250 cycles",
            "campaign_id": campaign_id,
            "iteration_id": iteration_id,
            "budget_start_attempt": 0,
        }
        for k, sid in enumerate([*ids, *ids[:40]])
    ]
    _copy(session, LabelingJob, jobs)
    done = session.execute(
        select(LabelingJob.id, LabelingJob.structure_id, LabelingJob.level_id).where(
            LabelingJob.iteration_id == iteration_id, LabelingJob.state == "succeeded"
        )
    ).all()
    gradient = np.zeros((8, 3)).tobytes()
    _copy(
        session,
        Label,
        [
            {
                "structure_id": sid,
                "level_id": lid,
                "job_id": jid,
                "total_energy_hartree": -59.8,
                "atomization_energy_hartree": None,
                "gradient_hartree_per_angstrom": gradient,
                "charges_e": None,
                "dipole_e_angstrom": None,
                "provenance": {"engine": "tblite"},
            }
            for jid, sid, lid in done
        ],
    )


def _steps(campaign_id: int, iteration: Any, ids: list[int], index: int) -> list[dict[str, Any]]:
    from interphase.db.models import utcnow

    outputs: dict[str, Any] = {
        "generate": {"candidate_ids": ids, "by_generator": {"lattice_noise": len(ids)}},
        "label": {"states": {LEVELS[0]: {"succeeded": len(ids)}}},
        "select": {"levels": {LEVELS[1]: {"n_scored": 2500, "n_uncertain": 900, "n_picked": 40}}},
        "evaluate": {
            "test_errors": {
                level: {
                    "n_structures": 100,
                    "energy_mae_mev_per_atom": 20.0 / (index + 1) + k,
                    "force_mae_mev_per_angstrom": 200.0 / (index + 1) + k,
                }
                for k, level in enumerate(LEVELS)
            },
            "pool_uncertain_fraction": 0.3,
        },
    }
    return [
        {
            "campaign_id": campaign_id,
            "iteration_id": iteration.id,
            "iteration_index": index,
            "name": name,
            "state": "succeeded",
            "attempts": 1,
            "started_at": utcnow(),
            "finished_at": utcnow(),
            "seconds": 12.0,
            "compute_seconds": 10.0,
            "outputs": outputs.get(name, {}),
            "error": None,
        }
        for name in STEPS
    ]


def _gps_and_training(
    session: Any,
    campaign_id: int,
    iteration_id: int,
    ids: list[int],
    levels: list[int],
    artifacts: Path,
) -> int:
    from sqlalchemy import select

    from interphase.db.models import (
        GPRModel,
        Label,
        SyntheticLabel,
        TrainingEpochMetric,
        TrainingRun,
    )

    label_ids = np.asarray(session.scalars(select(Label.id)).all(), dtype=np.int64)
    gps = [
        GPRModel(
            level_id=levels[k % 2],
            subset_key=f"Li8|8|nnn#{k}",
            hyperparameters={"lengthscale_angstrom": 0.5, "outputscale_hartree2": 1e-4},
            training_label_ids=label_ids[:400],
            metrics={
                "validation_energy_mae_mev_per_atom": 1.0,
                "validation_force_mae_mev_per_angstrom": 30.0,
            },
            state=b"\0" * 1000,
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        for k in range(10)
    ]
    session.add_all(gps)
    session.flush()
    _copy(
        session,
        SyntheticLabel,
        [
            {"structure_id": sid, "level_id": levels[0], "gpr_model_id": gps[k % 10].id,
             "energy_hartree": -59.8, "energy_std_hartree": 1e-4}
            for k, sid in enumerate(ids[:400])
        ],
    )  # fmt: skip
    parity = artifacts / f"parity-{iteration_id}.npz"
    rng = np.random.default_rng(iteration_id)
    arrays = {}
    for split in ("train", "validation"):
        for head in LEVELS:
            for kind in ("energy", "synthetic"):
                reference = rng.normal(-7.5, 0.01, 2000) * 8
                arrays[f"{split}/{head}/{kind}_n_atoms"] = np.full(2000, 8)
                arrays[f"{split}/{head}/{kind}_reference_hartree"] = reference
                arrays[f"{split}/{head}/{kind}_predicted_hartree"] = reference + rng.normal(
                    0, 1e-3, 2000
                )
            gradient = rng.normal(0, 0.01, (16000, 3))
            arrays[f"{split}/{head}/gradient_reference_hartree_per_angstrom"] = gradient
            arrays[f"{split}/{head}/gradient_predicted_hartree_per_angstrom"] = gradient * 1.05
    np.savez_compressed(parity, **arrays)  # type: ignore[arg-type]
    run = TrainingRun(
        config={"epochs": 100},
        heads=list(LEVELS),
        label_ids=label_ids,
        synthetic_label_ids=np.zeros(0, dtype=np.int64),
        status="succeeded",
        campaign_id=campaign_id,
        iteration_id=iteration_id,
        epochs_completed=100,
        best_epoch=90,
        metrics={"heads": {}, "parity_path": str(parity)},
    )
    session.add(run)
    session.flush()
    rows: list[dict[str, Any]] = []
    for epoch in range(1, 101):
        for split in ("train", "validation"):
            for head in (None, *LEVELS):  # every row with the same keys (executemany on SQLite)
                rows.append(
                    {
                        "training_run_id": run.id,
                        "epoch": epoch,
                        "split": split,
                        "head": head,
                        "loss": 1 / epoch if head is None else None,
                        "energy_mae_mev_per_atom": None if head is None else 10 / epoch,
                        "force_mae_mev_per_angstrom": None if head is None else 100 / epoch,
                    }
                )
    _copy(session, TrainingEpochMetric, rows)
    return int(run.id)


def fill(url: str, n_iterations: int, n_scores: int, artifacts: Path) -> dict[str, int]:
    from interphase.db.levels import get_or_create_level
    from interphase.db.models import Campaign, CampaignStep, CandidateScore, Iteration
    from interphase.db.session import transaction

    rng = np.random.default_rng(3)
    with transaction(url) as session:
        campaign = Campaign(
            name="bench",
            config=CONFIG,
            state="finished",
            stop_reason="max_iterations",
            stop_detail={"message": f"ran its {n_iterations} iterations"},
        )
        session.add(campaign)
        levels = [get_or_create_level(session, name) for name in LEVELS]
        for level in levels:
            level.engine = "tblite"
        session.flush()
        campaign_id, level_ids = campaign.id, [level.id for level in levels]
    for index in range(n_iterations):
        with transaction(url) as session:
            iteration = Iteration(campaign_id=campaign_id, index=index, status="succeeded")
            session.add(iteration)
            session.flush()
            ids = _structures(session, campaign_id, iteration.id, index)
            _copy(
                session,
                CandidateScore,
                _scores(campaign_id, iteration.id, ids, level_ids, n_scores, rng),
            )
            _jobs_and_labels(session, campaign_id, iteration.id, ids, level_ids)
            _copy(session, CampaignStep, _steps(campaign_id, iteration, ids, index))
            run_id = _gps_and_training(
                session, campaign_id, iteration.id, ids, level_ids, artifacts
            )
    return {"campaign": campaign_id, "last_index": n_iterations - 1, "run": run_id}


def time_pages(url: str, ids: dict[str, int], repeat: int) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from interphase.dashboard.app import create_app

    c, last = ids["campaign"], ids["last_index"]
    pages = {
        "campaigns (list)": "/campaigns",
        f"campaign ({last + 1} iterations)": f"/campaigns/{c}",
        "campaign live fragment (the 2 s poll)": f"/campaigns/{c}/live",
        "iteration (last)": f"/campaigns/{c}/iterations/{last}",
        "iteration live fragment": f"/campaigns/{c}/iterations/{last}/live",
        "model detail": f"/models/{ids['run']}",
    }
    results = []
    with TestClient(create_app(url, token="bench-token-0123456789")) as client:
        for name, path in pages.items():
            assert client.get(path).status_code == 200, path
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
            results.append(
                {"page": name, "path": path, "median_ms": statistics.median(times),
                 "max_ms": max(times), "bytes": len(response.content)}
            )  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--scores", type=int, default=5000, help="candidate scores per iteration")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--postgres-url", default=os.environ.get("INTERPHASE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    from sqlalchemy.engine import make_url

    from interphase.db.session import make_engine, upgrade

    with tempfile.TemporaryDirectory() as scratch:
        if args.sqlite:
            url = f"sqlite:///{Path(scratch) / 'bench.sqlite'}"
        elif args.postgres_url:
            url = make_url(args.postgres_url).set(database=SCRATCH_DB).render_as_string(False)
            _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
            _admin(args.postgres_url, f"CREATE DATABASE {SCRATCH_DB}")
        else:
            sys.exit("error: give --sqlite, --postgres-url or set INTERPHASE_TEST_POSTGRES_URL")
        try:
            upgrade(url)
            start = time.perf_counter()
            ids = fill(url, args.iterations, args.scores, Path(scratch))
            fill_s = time.perf_counter() - start
            with make_engine(url).connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
            results = time_pages(url, ids, args.repeat)
        finally:
            make_engine(url).dispose()
            if not args.sqlite:
                _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(
        f"{backend}: {args.iterations} iterations × {args.scores} scores, filled in {fill_s:.0f} s"
    )
    print(f"| page | median ms | max ms | KiB |  ({args.repeat} requests)")
    print("|---|---:|---:|---:|")
    for row in results:
        kib = row["bytes"] / 1024
        print(f"| {row['page']} | {row['median_ms']:.0f} | {row['max_ms']:.0f} | {kib:.0f} |")
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "backend": backend,
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
