"""Labeling through a real one-node SLURM cluster (deploy/slurm/local-cluster.sh).

Two forms: Dask workers that dask-jobqueue starts with sbatch, and the plain
pull workers of ``deploy/slurm/jobs-array.sbatch``. The cluster is started
when this machine allows it (root, with slurm-wlm installed or apt-get to
install it); otherwise the tests skip and only the job-script test runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from interphase.db.models import JobAttempt, JobState
from interphase.db.session import transaction
from interphase.execution import ExecutorSettings
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.conftest import POSTGRES_ADMIN_URL
from tests.distributed.campaigns import outcome
from tests.labeling.job_helpers import ROOT, queue_jobs, waters, worker_env

SCRIPT = ROOT / "deploy" / "slurm" / "local-cluster.sh"
ARRAY = ROOT / "deploy" / "slurm" / "jobs-array.sbatch"
#: Bound on a SLURM run in these tests (s): job start, imports, the jobs.
SLURM_LIMIT_S = 300


def postgres_only(test: Callable[..., None]) -> Callable[..., None]:
    """Run ``test`` on PostgreSQL only (workers on other hosts cannot reach SQLite)."""
    for mark in (
        pytest.mark.postgres,
        pytest.mark.skipif(
            not POSTGRES_ADMIN_URL, reason="INTERPHASE_TEST_POSTGRES_URL is not set"
        ),
        pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
    ):
        test = mark(test)
    return test


def _can_start() -> str | None:
    """Why a local SLURM cluster cannot be started here (None: it can)."""
    if os.geteuid() != 0:
        return "starting a local SLURM cluster needs root"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "slurm-wlm is not installed and apt-get is not available"
    return None


@pytest.fixture(scope="module")
def slurm() -> Iterator[None]:
    """A running one-node SLURM cluster (started here, and stopped after, if it was not running)."""
    running = subprocess.run([str(SCRIPT), "status"], check=False).returncode == 0
    if not running:
        if (reason := _can_start()) is not None:
            pytest.skip(reason)
        started = subprocess.run(
            [str(SCRIPT), "start"], capture_output=True, text=True, timeout=600, check=False
        )
        if started.returncode != 0:
            pytest.fail(f"local SLURM cluster did not start: {started.stderr.strip()}")
    yield
    if not running:
        subprocess.run([str(SCRIPT), "stop"], check=False, timeout=60)


def _slurm_env(url: str) -> dict[str, str]:
    return worker_env(url)


@pytest.mark.slow
@postgres_only
def test_a_slurm_job_array_of_pull_workers_runs_each_job_once(
    slurm: None, db_url: str, tmp_path: Path
) -> None:
    ids = queue_jobs(db_url, waters(12), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    env = _slurm_env(db_url)
    env["INTERPHASE"] = f"{sys.executable} -m interphase.cli"
    env["INTERPHASE_LEASE_S"] = "30"
    env["INTERPHASE_DATA_DIR"] = str(tmp_path / "data")
    submitted = subprocess.run(
        ["sbatch", "--wait", "--array=0-1", f"--output={tmp_path}/task-%a.out", str(ARRAY)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SLURM_LIMIT_S,
        check=False,
    )
    logs = {path.name: path.read_text() for path in tmp_path.glob("task-*.out")}
    assert submitted.returncode == 0, (submitted.stderr, logs)
    assert sorted(logs) == ["task-0.out", "task-1.out"]
    assert all("array task" in text for text in logs.values())
    states, successes, labels = outcome(db_url, ids)
    assert set(states.values()) == {JobState.succeeded}
    assert set(successes.values()) == {1} and len(successes) == 12
    assert set(labels.values()) == {1} and len(labels) == 12
    # Each array task reports what it ran; together they ran every job once.
    ran = [int(text.split("succeeded ")[1].split(",")[0]) for text in logs.values()]
    assert sum(ran) == 12


def test_the_job_array_template_refuses_sqlite(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", str(ARRAY)],
        env={**os.environ, "INTERPHASE_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 2 and "use PostgreSQL" in run.stderr


def slurm_settings(**fields: Any) -> ExecutorSettings:
    return ExecutorSettings.model_validate(
        {"kind": "dask", "cluster": "slurm", "workers": 2, "cores": 1, "memory": "2GiB"}
        | {"walltime": "00:15:00", **fields}
    )


def test_the_dask_worker_job_script_carries_the_settings() -> None:
    from dask_jobqueue import SLURMCluster

    from interphase_flows.clusters import jobqueue_arguments

    settings = slurm_settings(
        queue="gpu",
        account="sei",
        job_extra_directives=["--gres=gpu:1"],
        job_script_prologue=["module load psi4"],
        gpu_resources=True,
    )
    arguments = jobqueue_arguments(settings, "http://10.0.0.5:4200/api")
    with SLURMCluster(**arguments) as cluster:
        script = cluster.job_script()
    for line in [
        "#SBATCH -p gpu",
        "#SBATCH -A sei",
        "#SBATCH --gres=gpu:1",
        "#SBATCH -t 00:15:00",
        "export PREFECT_API_URL=http://10.0.0.5:4200/api",
        "export DASK_DISTRIBUTED__WORKER__DAEMON=False",
        "module load psi4",
        "--resources GPU=1",
    ]:
        assert line in script, f"{line!r} missing from:\n{script}"


@pytest.mark.slow
@postgres_only
def test_labeling_runs_on_dask_workers_started_by_sbatch(
    slurm: None, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interphase_flows.runtime import configure_local_prefect

    configure_local_prefect(tmp_path)
    from prefect.testing.utilities import prefect_test_harness

    from interphase_flows.dask import DaskExecutor

    ids = queue_jobs(db_url, waters(20), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    for key, value in _slurm_env(db_url).items():  # what the worker jobs inherit from sbatch
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # the worker jobs' output files
    with prefect_test_harness(), DaskExecutor(slurm_settings(), db_url) as executor:
        executor.run_labeling(
            db_url, campaign_id=None, workers=2, options=WorkerOptions(lease_s=30)
        )
        jobs_of_workers = executor.client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        worker_pids = set(executor.client.run(os.getpid).values())
    assert jobs_of_workers and all(jobs_of_workers.values())  # every Dask worker is a SLURM job
    states, successes, labels = outcome(db_url, ids)
    assert set(states.values()) == {JobState.succeeded}
    assert set(successes.values()) == {1} and len(successes) == 20
    assert set(labels.values()) == {1} and len(labels) == 20
    with transaction(db_url) as session:
        workers = session.scalars(select(JobAttempt.worker).where(JobAttempt.job_id.in_(ids)))
        assert {int(str(name).split(":")[1]) for name in workers} <= worker_pids
