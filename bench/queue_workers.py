"""Throughput of the labeling queue: local worker processes against Dask workers.

For each worker count (default 1, 2, 4) and each way of running workers —
``local`` (:func:`~interphase.labeling.queue.parallel.run_workers`: this process for 1,
spawned processes otherwise, as ``interphase jobs run --workers N``) and
``dask`` (:class:`~interphase_flows.dask.DaskExecutor` on a LocalCluster
of N one-thread worker processes, through prefect-dask) — a fresh PostgreSQL
database gets the same batch of jobs and is drained. Two batches:

- ``xtb``: N distinct waters at GFN2-xTB (tblite, in the worker's process);
- ``pyscf``: M waters and Li2 molecules at HF/STO-3G (PySCF, each job in its own
  process, as every DFT engine runs).

Reported per case: jobs/s, worker-seconds per job (wall time × workers / jobs),
and the cost per job beyond the bare engine call: worker-seconds per job minus
the bare call's mean time, measured here on the same structures with one
thread. Local runs include starting their worker processes; a Dask cluster is
started before the clock starts (its start time is reported apart). Every
worker runs one OpenMP thread. With more workers than cores the workers share
the cores, so worker-seconds per job grow without any extra work.

Run (about 10 minutes on 2 cores):
``.venv/bin/python bench/queue_workers.py --xtb-jobs 1000 --pyscf-jobs 40``
Prints one JSON object; ``--markdown`` prints the table for bench/RESULTS.md too.
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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy, tblite and PySCF load

import numpy as np
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WATER_ANGSTROM = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])
LI2_ANGSTROM = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.67]])


@dataclass(frozen=True)
class Batch:
    """A kind of job: level name, engine, method, basis, and the structures."""

    name: str
    engine: str
    method: str
    basis: str | None
    structures: list[Any]


@dataclass
class Case:
    batch: str
    mode: str
    workers: int
    jobs: int
    wall_s: float
    jobs_per_s: float
    worker_s_per_job: float
    bare_engine_ms: float
    cost_beyond_engine_ms: float
    mean_attempt_ms: float
    cluster_start_s: float | None


def structures(n: int, kinds: list[np.ndarray], numbers: list[list[int]], seed: int) -> list[Any]:
    from interphase.records import StructureRecord

    rng = np.random.default_rng(seed)
    return [
        StructureRecord(
            numbers=np.array(numbers[i % len(kinds)]),
            positions_angstrom=kinds[i % len(kinds)]
            + rng.normal(scale=0.02, size=kinds[i % len(kinds)].shape),
        )
        for i in range(n)
    ]


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards."""
    from interphase.db.session import make_engine, upgrade

    name = f"interphase_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(admin_url).set(database=name).render_as_string(False)
    try:
        upgrade(url)
        yield url
    finally:
        make_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def queue(url: str, batch: Batch) -> int:
    from interphase.db.levels import get_or_create_level
    from interphase.db.session import transaction
    from interphase.db.structures import store_structures
    from interphase.labeling.queue.enqueue import create_jobs

    with transaction(url) as session:
        ids = store_structures(session, batch.structures, generator="bench").ids
        level = get_or_create_level(session, batch.name)
        level.engine, level.method, level.basis = batch.engine, batch.method, batch.basis
        session.flush()
        return len(create_jobs(session, ids, level))


def bare_engine_s(batch: Batch, sample: int) -> float:
    """Mean time (s) of the engine call alone on the batch's first ``sample`` structures."""
    from interphase.labeling.engines import get_engine
    from interphase.labeling.engines.contract import Calculation

    engine = get_engine(batch.engine)
    calculation = Calculation(batch.method, batch.basis)
    engine.compute(batch.structures[0], calculation)  # imports and first-call setup
    times = []
    for record in batch.structures[:sample]:
        start = time.perf_counter()
        engine.compute(record, calculation)
        times.append(time.perf_counter() - start)
    return statistics.fmean(times)


def check_and_time(url: str, jobs: int) -> float:
    """Mean attempt time (s); fails unless every job succeeded with one attempt."""
    from interphase.db.models import JobAttempt, JobState, LabelingJob
    from interphase.db.session import transaction

    with transaction(url) as session:
        succeeded = session.scalar(
            select(func.count())
            .select_from(LabelingJob)
            .where(LabelingJob.state == JobState.succeeded)
        )
        times = list(session.scalars(select(JobAttempt.wall_time_s)))
    if succeeded != jobs or len(times) != jobs:
        raise SystemExit(f"{succeeded} of {jobs} jobs succeeded with {len(times)} attempts")
    return statistics.fmean(t or 0.0 for t in times)


def run_case(
    admin_url: str, batch: Batch, mode: str, workers: int, bare_s: float, executor: Any
) -> Case:
    from interphase.labeling.queue.parallel import run_workers
    from interphase.labeling.queue.worker_options import WorkerOptions

    options = WorkerOptions(lease_s=60)
    with fresh_database(admin_url) as url:
        jobs = queue(url, batch)
        drain: Callable[[], object]
        if mode == "local":
            drain = lambda: run_workers(url, workers, options=options)  # noqa: E731
        else:
            drain = lambda: executor.run_labeling(  # noqa: E731
                url, campaign_id=None, workers=workers, options=options
            )
        start = time.perf_counter()
        drain()
        wall = time.perf_counter() - start
        attempt_s = check_and_time(url, jobs)
    per_job = wall * workers / jobs
    return Case(
        batch=batch.name,
        mode=mode,
        workers=workers,
        jobs=jobs,
        wall_s=round(wall, 2),
        jobs_per_s=round(jobs / wall, 2),
        worker_s_per_job=round(per_job, 4),
        bare_engine_ms=round(bare_s * 1e3, 2),
        cost_beyond_engine_ms=round((per_job - bare_s) * 1e3, 1),
        mean_attempt_ms=round(attempt_s * 1e3, 2),
        cluster_start_s=None,
    )


def dask_executor(workers: int, admin_url: str) -> tuple[Any, float]:
    """A started DaskExecutor with ``workers`` one-thread workers, and its start time (s)."""
    from interphase.execution import ExecutorSettings
    from interphase_flows.dask import DaskExecutor

    executor = DaskExecutor(ExecutorSettings(kind="dask", workers=workers), admin_url)
    start = time.perf_counter()
    executor.client.wait_for_workers(workers, timeout=300)
    return executor, time.perf_counter() - start


def markdown(cases: list[Case]) -> str:
    lines = [
        "| batch | mode | workers | jobs | wall s | jobs/s | worker-s/job | bare engine ms "
        "| cost beyond engine ms/job | mean attempt ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        lines.append(
            f"| {c.batch} | {c.mode} | {c.workers} | {c.jobs} | {c.wall_s} | {c.jobs_per_s} "
            f"| {c.worker_s_per_job} | {c.bare_engine_ms} | {c.cost_beyond_engine_ms} "
            f"| {c.mean_attempt_ms} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xtb-jobs", type=int, default=1000)
    parser.add_argument("--pyscf-jobs", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--modes", nargs="+", default=["local", "dask"])
    parser.add_argument(
        "--admin-url", default=os.environ.get("INTERPHASE_BENCH_ADMIN_URL", ADMIN_URL)
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--preload",
        choices=["full", "minimal"],
        default="full",
        help="minimal: the fork server preloads only interphase's modules (as before issue "
        "24), not the engines' libraries; to measure what the preload saves.",
    )
    args = parser.parse_args()
    if args.preload == "minimal":
        from interphase.labeling.isolation import forkserver

        forkserver.PRELOAD[:] = [m for m in forkserver.PRELOAD if m.startswith("interphase.")]

    prefect_home = Path(tempfile.mkdtemp(prefix="interphase-bench-prefect-"))
    sys.path.insert(0, str(ROOT / "flows"))
    from interphase_flows.runtime import configure_local_prefect

    configure_local_prefect(prefect_home)

    batches = [
        Batch(
            "GFN2-xTB",
            "tblite",
            "GFN2-xTB",
            None,
            structures(args.xtb_jobs, [WATER_ANGSTROM], [[8, 1, 1]], seed=0),
        ),
        Batch(
            "HF/STO-3G",
            "pyscf",
            "HF",
            "sto-3g",
            structures(args.pyscf_jobs, [WATER_ANGSTROM, LI2_ANGSTROM], [[8, 1, 1], [3, 3]], 1),
        ),
    ]
    bare = {
        batch.name: bare_engine_s(batch, sample=min(len(batch.structures), 200))
        for batch in batches
    }
    cases: list[Case] = []
    for workers in args.workers:
        for mode in args.modes:
            executor, started_s = (None, None)
            if mode == "dask":
                executor, started_s = dask_executor(workers, args.admin_url)
            try:
                for batch in batches:
                    case = run_case(
                        args.admin_url, batch, mode, workers, bare[batch.name], executor
                    )
                    case.cluster_start_s = None if started_s is None else round(started_s, 1)
                    cases.append(case)
                    print(json.dumps(asdict(case)), file=sys.stderr, flush=True)
            finally:
                if executor is not None:
                    executor.close()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "omp_num_threads": os.environ["OMP_NUM_THREADS"],
        "bare_engine_ms": {name: round(s * 1e3, 2) for name, s in bare.items()},
        "cases": [asdict(case) for case in cases],
    }
    print(json.dumps(report, indent=2))
    if args.markdown:
        print(markdown(cases))


if __name__ == "__main__":
    main()
