"""Soak of the labeling queue: GFN2-xTB jobs, several workers, random SIGKILLs.

N waters are queued at GFN2-xTB (a fraction with ``time_limit_s``, so they run
isolated and a killed worker leaves a calculation behind that its watchdog must
end). ``interphase jobs run`` worker processes drain the queue while a killer
SIGKILLs a random worker every few seconds (a bounded number of times) and
starts a replacement. At the end:

- every job succeeded exactly once: one label per job, one succeeded attempt
  per job, no label without a job;
- the ``LeaseExpired`` attempts are those of killed workers that died holding a
  job (at most one each), no healthy worker lost a lease and nothing else failed;
- no process of any worker session is left (``/proc``, as ``ps`` sees it).

Run (PostgreSQL by default; a fresh database is made and dropped):
``.venv/bin/python bench/soak_jobs.py --jobs 2000 --workers 4 --kills 12``
or on a given, migrated database: ``--url sqlite:////tmp/soak.sqlite``.
Prints one JSON object; exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from interphase.db.levels import get_or_create_level
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob
from interphase.db.session import make_engine, transaction, upgrade
from interphase.db.structures import store_structures
from interphase.labeling.queue.enqueue import create_jobs
from interphase.records import StructureRecord

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WATER_ANGSTROM = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])
LEASE_S = 5.0


def queue_waters(
    url: str, n_jobs: int, isolated_fraction: float, seed: int
) -> tuple[list[int], int]:
    """``n_jobs`` distinct waters queued at GFN2-xTB, every k-th with a time limit.

    Returns the job ids and how many of them run isolated.
    """
    rng = np.random.default_rng(seed)
    records = [
        StructureRecord(
            numbers=np.array([8, 1, 1]),
            positions_angstrom=WATER_ANGSTROM + rng.normal(scale=0.02, size=(3, 3)),
        )
        for _ in range(n_jobs)
    ]
    with transaction(url) as session:
        ids = store_structures(session, records, generator="soak").ids
        level = get_or_create_level(session, "GFN2-xTB")
        jobs = create_jobs(session, ids, level)
        every = round(1 / isolated_fraction) if isolated_fraction > 0 else 0
        isolated = [job for index, job in enumerate(jobs) if every and index % every == 0]
        for job in isolated:
            job.settings = {"time_limit_s": 600.0}  # runs isolated, in its own process
        return [job.id for job in jobs], len(isolated)


def start_worker(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INTERPHASE_DATABASE_URL": url,
        "INTERPHASE_DATA_DIR": str(data_dir),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "interphase.cli", "jobs", "run", "--lease-s", str(LEASE_S)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its session id finds every process it started
    )


def session_processes(session_ids: set[int]) -> list[dict[str, Any]]:
    """Live processes whose session is one of ``session_ids`` (what ``ps -s`` lists)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) in session_ids and fields[0] != "Z":
            found.append({"pid": int(entry.name), "command": command})
    return found


def open_jobs(url: str) -> int:
    with transaction(url) as session:
        query = select(func.count()).where(
            LabelingJob.state.in_([JobState.pending, JobState.running])
        )
        return int(session.scalar(query.select_from(LabelingJob)) or 0)


def kill_thresholds(n_jobs: int, kills: int) -> list[int]:
    """Open-job counts at which the kills fire: after 1/(k+1), 2/(k+1), ... of the queue."""
    return [n_jobs - (n_jobs * (k + 1)) // (kills + 1) for k in range(kills)]


def running_attempts_of(url: str, pid: int) -> list[int]:
    """Attempts left open by the (dead) worker process ``pid``."""
    with transaction(url) as session:
        return list(
            session.scalars(
                select(JobAttempt.id).where(
                    JobAttempt.worker.like(f"%:{pid}:%"),
                    JobAttempt.finished_at.is_(None),
                    JobAttempt.state == JobState.running,
                )
            )
        )


class Soak:
    """The workers, the killer and what it did."""

    def __init__(self, url: str, args: argparse.Namespace, data_dir: Path) -> None:
        self.url, self.args, self.data_dir = url, args, data_dir
        self.rng = random.Random(args.seed)
        self.workers = [start_worker(url, data_dir) for _ in range(args.workers)]
        self.sessions = {worker.pid for worker in self.workers}
        self.kills: list[dict[str, Any]] = []
        self.slow_orphans: list[dict[str, Any]] = []

    def kill_one(self) -> None:
        alive = [worker for worker in self.workers if worker.poll() is None]
        if not alive:
            return
        # A worker in the middle of a job, when there is one (a fresh replacement is
        # still importing, and killing it tests nothing).
        busy = [worker for worker in alive if running_attempts_of(self.url, worker.pid)]
        victim = self.rng.choice(busy or alive)
        children = [p["pid"] for p in session_processes({victim.pid}) if p["pid"] != victim.pid]
        os.kill(victim.pid, signal.SIGKILL)  # the worker only: its children must follow
        victim.wait()
        held = running_attempts_of(self.url, victim.pid)
        deadline = time.monotonic() + self.args.orphan_deadline_s
        while (left := session_processes({victim.pid})) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            self.slow_orphans += left
        self.kills.append({"pid": victim.pid, "held_attempts": held, "children": children})
        self.workers.remove(victim)
        self.workers.append(start_worker(self.url, self.data_dir))
        self.sessions.add(self.workers[-1].pid)

    def run(self, n_jobs: int) -> float:
        started = time.perf_counter()
        thresholds = kill_thresholds(n_jobs, self.args.kills)
        while remaining := open_jobs(self.url):
            if len(self.kills) < len(thresholds) and remaining <= thresholds[len(self.kills)]:
                self.kill_one()
            if not any(worker.poll() is None for worker in self.workers):
                # Workers exit once nothing is pending; a job held by a dead worker
                # comes back only when its lease ends, so keep one waiting for it.
                self.workers.append(start_worker(self.url, self.data_dir))
                self.sessions.add(self.workers[-1].pid)
            time.sleep(0.05)
        wall_s = time.perf_counter() - started
        for worker in self.workers:
            worker.wait(timeout=120)
        return wall_s


def _worker_pid(worker: str | None) -> int:
    return int(str(worker).split(":")[1])  # host:pid:random


def checks(url: str, job_ids: list[int], soak: Soak) -> dict[str, Any]:
    with transaction(url) as session:
        states = Counter(state.value for state in session.scalars(select(LabelingJob.state)))
        labels_per_job = Counter(session.scalars(select(Label.job_id)))
        succeeded_per_job = Counter(
            session.scalars(select(JobAttempt.job_id).where(JobAttempt.state == JobState.succeeded))
        )
        attempts = list(
            session.execute(select(JobAttempt.id, JobAttempt.worker, JobAttempt.error_class))
        )
    outcomes = Counter(error or "succeeded" for _, _, error in attempts)
    killed = {kill["pid"] for kill in soak.kills}
    # What each killed worker's attempts became (a kill can land while the worker's
    # last commit is still in flight, so the snapshot at the kill is only a hint).
    left_by_kill = Counter(
        _worker_pid(worker) for _, worker, error in attempts if error == "LeaseExpired"
    )
    healthy_lost = [pid for pid in left_by_kill if pid not in killed]
    other_failures = [
        attempt_id for attempt_id, worker, error in attempts if error not in (None, "LeaseExpired")
    ]
    deadline = time.monotonic() + soak.args.orphan_deadline_s  # fork servers exit just after
    while (orphans := session_processes(soak.sessions)) and time.monotonic() < deadline:
        time.sleep(0.1)
    result = {
        "every_job_succeeded": states == {"succeeded": len(job_ids)},
        "one_label_per_job": set(labels_per_job) == set(job_ids)
        and set(labels_per_job.values()) == {1},
        "one_succeeded_attempt_per_job": set(succeeded_per_job) == set(job_ids)
        and set(succeeded_per_job.values()) == {1},
        # LeaseExpired only for killed workers, at most one each; nothing else failed.
        "lease_expired_matches_kills": not healthy_lost
        and all(count == 1 for count in left_by_kill.values())
        and not other_failures,
        "no_orphans": not orphans and not soak.slow_orphans,
    }
    return {
        "checks": result,
        "ok": all(result.values()),
        "job_states": dict(states),
        "attempts_by_outcome": dict(outcomes),
        "kills": len(soak.kills),
        "kills_leaving_a_running_job": len(left_by_kill),
        "kills_holding_a_job_at_the_snapshot": sum(bool(k["held_attempts"]) for k in soak.kills),
        # Processes the worker had started (fork server, calculation and its watchdog).
        "kills_with_child_processes": sum(bool(kill["children"]) for kill in soak.kills),
        "lease_expired_attempts": outcomes.get("LeaseExpired", 0),
        "orphans": orphans + soak.slow_orphans,
    }


def fresh_postgres(admin_url: str) -> str:
    name = f"interphase_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(admin_url: str, url: str) -> None:
    make_engine(url).dispose()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        name = make_url(url).database
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database to use (default: a fresh PostgreSQL one)")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL admin URL")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--kills", type=int, default=12, help="SIGKILLs in all, spread over the queue's progress"
    )
    parser.add_argument("--isolated-fraction", type=float, default=0.1)
    parser.add_argument("--orphan-deadline-s", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    url = args.url or fresh_postgres(args.admin_url)
    report: dict[str, Any] = {}
    try:
        upgrade(url)
        job_ids, n_isolated = queue_waters(url, args.jobs, args.isolated_fraction, args.seed)
        with tempfile.TemporaryDirectory(prefix="interphase-soak-") as data_dir:
            soak = Soak(url, args, Path(data_dir))
            wall_s = soak.run(len(job_ids))
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "database": make_url(url).get_backend_name(),
            "jobs": len(job_ids),
            "workers": args.workers,
            "isolated_jobs": n_isolated,
            "wall_s": round(wall_s, 1),
            "jobs_per_s": round(len(job_ids) / wall_s, 2),
            **checks(url, job_ids, soak),
        }
    finally:
        if args.url is None:
            drop_postgres(args.admin_url, url)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
