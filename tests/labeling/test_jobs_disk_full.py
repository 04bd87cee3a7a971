"""A worker whose database's disk fills up: one line, the job put back at once (issue 20, item 2).

Reproduced with a 2 MB tmpfs as the data directory and about 60 KB free:
``jobs run`` ended in a 95-line traceback and left its job and attempt
``running`` until the 300 s lease ran out. Here the disk fills up (a filler
file, on a tmpfs the test mounts) while a real PySCF calculation runs, so
storing its label finds no room. Putting the job back is a small write, which
fits once the worker has checkpointed its WAL into the database file; only
where that too finds no room (the file itself must grow) does the job wait
for its lease, and the one line says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interphase.db.models import JobState
from interphase.db.session import make_engine, upgrade
from interphase.labeling.engines import get_engine
from interphase.labeling.queue.retry import INTERRUPTED
from tests.io.disk_full import count, fill, grow, integrity, run_cli, small_disk
from tests.labeling.job_helpers import (
    attempt_pid,
    job_and_attempts,
    queue_jobs,
    start_cli,
    wait_for,
    waters,
)


@pytest.mark.slow
def test_a_worker_whose_disk_fills_up_puts_its_job_back_at_once(tmp_path: Path) -> None:
    if not (availability := get_engine("pyscf").available()).ok:
        pytest.skip(f"pyscf not installed: {availability.reason}")
    with small_disk(tmp_path) as data_dir:
        database = data_dir / "interphase.sqlite"
        url = f"sqlite:///{database}"
        upgrade(url)
        # HF/def2-QZVPP without density fitting: seconds of SCF, time to fill the disk.
        (job_id,) = queue_jobs(
            url,
            waters(1, seed=4),
            level="HF_def2-QZVPP",
            engine="pyscf",
            method="HF",
            basis="def2-QZVPP",
            settings={"density_fit": False},
        )
        make_engine(url).dispose()  # the database at rest, as any command leaves it
        worker = start_cli(url, "jobs", "run", data_dir=data_dir)
        wait_for(lambda: attempt_pid(url, job_id), "the calculation to start")
        make_engine(url).dispose()
        fill(data_dir, leave_kb=0)  # storing the label will find no room
        _, err = worker.communicate(timeout=600)

        assert worker.returncode == 2, err  # was 1, after a 95-line traceback
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"error: disk full at {database}"), err
        assert err.strip().endswith(f"job {job_id} put back to pending"), err
        (data_dir / "filler").unlink()
        job, attempts = job_and_attempts(url, job_id)  # was running, until the lease ran out
        assert job.state == JobState.pending and job.lease_expires_at is None
        assert attempts[0].error_class == INTERRUPTED and attempts[0].finished_at is not None
        assert f"disk full at {database}" in (attempts[0].error_message or "")
        assert integrity(database) == "ok" and count(database, "label") == 0

        grow(data_dir)  # with room again, the job is labeled, once
        rerun = run_cli(data_dir, "jobs", "run")
        assert rerun.returncode == 0, rerun.stderr
        assert job_and_attempts(url, job_id)[0].state == JobState.succeeded
        assert count(database, "label") == 1
        make_engine(url).dispose()
