"""Small helpers shared by the job-system tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from interphase.db.levels import get_or_create_level
from interphase.db.models import JobAttempt, JobState, LabelingJob
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.labeling.queue.enqueue import create_jobs
from interphase.records import StructureRecord

WATER_ANGSTROM = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])


def waters(n: int, seed: int = 0) -> list[StructureRecord]:
    """``n`` distinct water geometries (small random displacements)."""
    rng = np.random.default_rng(seed)
    return [
        StructureRecord(
            numbers=np.array([8, 1, 1]),
            positions_angstrom=WATER_ANGSTROM + rng.normal(scale=0.01, size=(3, 3)),
        )
        for _ in range(n)
    ]


def queue_jobs(
    url: str,
    records: list[StructureRecord],
    *,
    level: str,
    engine: str,
    method: str,
    basis: str | None = None,
    settings: dict[str, Any] | None = None,
) -> list[int]:
    """Store ``records`` and queue one job each at a level defined here."""
    with transaction(url) as session:
        ids = store_structures(session, records, generator="test").ids
        row = get_or_create_level(session, level)
        row.engine, row.method, row.basis = engine, method, basis
        row.settings = dict(settings or {})
        session.flush()
        return [job.id for job in create_jobs(session, ids, row)]


def job_and_attempts(url: str, job_id: int) -> tuple[LabelingJob, list[JobAttempt]]:
    with transaction(url) as session:
        job = session.get_one(LabelingJob, job_id)
        attempts = list(
            session.scalars(
                select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
            )
        )
        session.expunge_all()
        return job, attempts


ROOT = Path(__file__).resolve().parents[2]
#: Generous: waits end as soon as the state is observed; the deadline only stops a hang.
DEADLINE_S = 120.0


def wait_for(predicate: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def worker_env(url: str, **extra: str) -> dict[str, str]:
    """Environment of a worker subprocess on ``url`` (one OpenMP thread: 2 shared cores)."""
    return {
        **os.environ,
        # This checkout's library and flows, not whichever the environment installed.
        "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT / "flows"), str(ROOT)]),
        "OMP_NUM_THREADS": "1",
        "INTERPHASE_DATABASE_URL": url,
        **extra,
    }


def start_cli(url: str, *args: str, data_dir: Path) -> subprocess.Popen[str]:
    """``interphase ARGS`` in its own session (so its whole process tree can be found)."""
    return subprocess.Popen(
        [sys.executable, "-m", "interphase.cli", *args],
        cwd=ROOT,
        env=worker_env(url, INTERPHASE_DATA_DIR=str(data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def session_processes(session_id: int) -> list[int]:
    """Pids of the live (non-zombie) processes in a session."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        state, sid = fields[0], int(fields[3])
        if sid == session_id and state != "Z":
            pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def attempt_pid(url: str, job_id: int) -> int | None:
    """The pid recorded on the job's running attempt, once its calculation started."""
    with transaction(url) as session:
        return session.scalar(
            select(JobAttempt.pid).where(
                JobAttempt.job_id == job_id,
                JobAttempt.finished_at.is_(None),
                JobAttempt.pid.is_not(None),
            )
        )


#: A worker process that knows the fake engines (``python -c WORKER URL LEASE_S``).
WORKER = """
import sys
from tests.labeling import fake_engines
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
fake_engines.register()
options = WorkerOptions(lease_s=float(sys.argv[2]), heartbeat_s=float(sys.argv[2]) / 5)
report = run_pending_jobs(sys.argv[1], options=options)
print(report.succeeded, report.already_labeled, report.failed)
"""

#: ``jobs run``'s worker body, with the fake engines known (exits 130/143 when stopped).
FAKE_ENGINE_WORKER = """
import sys
from tests.labeling import fake_engines
from interphase.labeling.queue.worker_options import WorkerOptions
from interphase.labeling.queue.parallel import worker_main
fake_engines.register()
worker_main(sys.argv[1], None, None, WorkerOptions(lease_s=float(sys.argv[2])))
"""


def start_worker(
    url: str, lease_s: float = 60.0, script: str = WORKER, **env: str
) -> subprocess.Popen[str]:
    """A worker subprocess (fake engines registered) on ``url``, in its own session.

    ``env``: more environment variables for it.
    """
    return subprocess.Popen(
        [sys.executable, "-c", script, url, str(lease_s)],
        cwd=ROOT,
        env=worker_env(url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def job_state(url: str, job_id: int) -> JobState:
    return job_and_attempts(url, job_id)[0].state
