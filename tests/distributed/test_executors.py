"""Executor settings, the SQLite refusal, and LocalExecutor (no Dask cluster needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from interphase import execution
from interphase.db.models import JobAttempt, JobState, Label, LabelingJob
from interphase.db.session import transaction
from interphase.execution import (
    ExecutorConfigError,
    ExecutorSettings,
    LocalExecutor,
    executor_from_settings,
)
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.distributed.mapped import square_late_first
from tests.labeling.job_helpers import ROOT, alive, queue_jobs, wait_for, waters, worker_env

SQLITE_URL = "sqlite:////tmp/nowhere/interphase.sqlite"


def test_every_setting_is_described_and_unknown_keys_are_refused() -> None:
    for name, info in ExecutorSettings.model_fields.items():
        assert info.description, f"{name} has no description"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ExecutorSettings.model_validate({"kind": "dask", "nodes": 4})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "tcp://10.1.2.3:8786"}, "address need kind: dask"),
        ({"kind": "dask", "address": "tcp://h:8786", "cluster": "slurm"}, "not both"),
        ({"kind": "dask", "cluster": "slurm", "adapt_maximum": 4}, "together"),
        ({"kind": "dask", "cluster": "pbs", "adapt_minimum": 5, "adapt_maximum": 4}, "exceeds"),
        ({"kind": "dask", "workers": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExecutorSettings.model_validate(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "dask", "address": "tcp://10.1.2.3:8786"},
        {"kind": "dask", "cluster": "slurm"},
        {"kind": "dask", "cluster": "pbs", "queue": "batch"},
    ],
)
def test_a_multi_host_executor_on_sqlite_is_refused_in_one_line(fields: dict[str, object]) -> None:
    settings = ExecutorSettings.model_validate(fields)
    assert settings.multi_host
    with pytest.raises(ExecutorConfigError) as refused:
        executor_from_settings(settings, SQLITE_URL)
    message = str(refused.value)
    assert "\n" not in message
    assert "SQLite" in message and "PostgreSQL" in message and "INTERPHASE_DATABASE_URL" in message


def test_single_host_executors_accept_sqlite() -> None:
    assert isinstance(
        executor_from_settings(ExecutorSettings(workers=3), SQLITE_URL), LocalExecutor
    )
    local_dask = ExecutorSettings(kind="dask", cluster="local")
    assert not local_dask.multi_host
    assert executor_from_settings(local_dask, SQLITE_URL).name == "dask"


def test_dask_without_the_hpc_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "interphase_flows.dask", raising=False)
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # import fails as if not installed
    with pytest.raises(ExecutorConfigError, match=r"prefect_dask is missing.*interphase\[hpc\]"):
        executor_from_settings(ExecutorSettings(kind="dask"), SQLITE_URL)


def test_an_executor_kind_nobody_registered_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(execution, "entry_points", lambda **_: ())
    with pytest.raises(ExecutorConfigError) as refused:
        executor_from_settings(ExecutorSettings(kind="dask"), SQLITE_URL)
    message = str(refused.value)
    assert "\n" not in message
    assert "interphase.executors" in message and "interphase[hpc]" in message


def test_the_library_imports_no_prefect_and_no_dask() -> None:
    modules = "interphase.execution, interphase.campaign.run, interphase.gpr.fit, interphase.cli"
    check = (
        f"import sys, {modules}\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'prefect', 'prefect_dask', 'dask', 'distributed'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("workers", [1, 2])
def test_local_map_keeps_the_input_order(workers: int) -> None:
    items = [(x, 5) for x in range(5)]  # earlier items sleep longer, so finish last
    results = LocalExecutor(workers=workers).map(square_late_first, items)
    assert [value for value, _ in results] == [0, 1, 4, 9, 16]
    pids = {pid for _, pid in results}
    assert (pids == {os.getpid()}) if workers == 1 else (os.getpid() not in pids)


MAP_THEN_WAIT = """
import sys
from interphase.execution import LocalExecutor
from tests.distributed.mapped import note_pid_and_wait
LocalExecutor(workers=2).map(note_pid_and_wait, [sys.argv[1]] * 2)
"""


def test_local_map_processes_die_with_a_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", MAP_THEN_WAIT, str(tmp_path)],
        cwd=ROOT,
        env=worker_env("sqlite://"),
        start_new_session=True,
    )

    def both_started() -> list[int] | None:
        assert parent.poll() is None, "the mapping process ended early"
        pids = [int(path.name) for path in tmp_path.iterdir()]
        return pids if len(pids) == 2 else None

    try:
        children = wait_for(both_started, "both map processes")
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=60)
        wait_for(lambda: not any(alive(pid) for pid in children), "the map processes to die")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_local_labeling_runs_one_campaign_only(db_url: str) -> None:
    from tests.distributed.campaigns import assign_campaign, make_campaign

    ids = queue_jobs(db_url, waters(6), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    mine, other = make_campaign(db_url, "mine"), make_campaign(db_url, "other")
    assign_campaign(db_url, ids[:4], mine)
    assign_campaign(db_url, ids[4:], other)
    LocalExecutor().run_labeling(
        db_url, campaign_id=mine, workers=1, options=WorkerOptions(lease_s=30)
    )
    with transaction(db_url) as session:
        states = dict(session.execute(select(LabelingJob.id, LabelingJob.state)).all())
        labels = session.scalar(select(func.count()).select_from(Label))
        attempts = session.scalar(select(func.count()).select_from(JobAttempt))
    assert [states[i] for i in ids] == [JobState.succeeded] * 4 + [JobState.pending] * 2
    assert labels == 4 and attempts == 4
