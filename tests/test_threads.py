"""The thread policy's arithmetic: affinity, cgroup quota, concurrent processes, override."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from interphase.threads import (
    ThreadPolicyError,
    available_cores,
    cgroup_quota_cores,
    child_environment,
    plan_threads,
)


def _cgroup_v2(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cpu.max").write_text(text + "\n")
    return tmp_path


def _cgroup_v1(tmp_path: Path, quota: str, period: str) -> Path:
    cpu = tmp_path / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text(quota + "\n")
    (cpu / "cpu.cfs_period_us").write_text(period + "\n")
    return tmp_path


def test_cgroup_v2_quota_in_cores(tmp_path: Path) -> None:
    assert cgroup_quota_cores(_cgroup_v2(tmp_path, "150000 100000")) == pytest.approx(1.5)


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    assert cgroup_quota_cores(_cgroup_v2(tmp_path, "max 100000")) is None


def test_cgroup_v1_quota_and_unlimited(tmp_path: Path) -> None:
    assert cgroup_quota_cores(_cgroup_v1(tmp_path / "a", "300000", "100000")) == 3.0
    assert cgroup_quota_cores(_cgroup_v1(tmp_path / "b", "-1", "100000")) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota_cores(tmp_path) is None


def test_quota_caps_affinity_rounding_up(tmp_path: Path) -> None:
    # Half a core still gives one thread; 1.5 cores give two, unless affinity allows fewer.
    assert available_cores(_cgroup_v2(tmp_path / "a", "50000 100000")) == 1
    assert available_cores(_cgroup_v2(tmp_path / "b", "150000 100000")) == min(
        2, len(os.sched_getaffinity(0))
    )


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="affinity is Linux-only")
def test_affinity_of_a_real_process_is_counted() -> None:
    """A process pinned to one CPU plans one thread, whatever os.cpu_count() says."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = (
        f"import os; os.sched_setaffinity(0, {{{cpu}}});"
        "from interphase.threads import available_cores, plan_threads;"
        "print(available_cores(), plan_threads(0).threads)"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("INTERPHASE_THREADS", "OMP_NUM_THREADS")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["1", "1"]


@pytest.mark.parametrize(
    ("cores", "siblings", "threads"),
    [(2, 0, 2), (2, 1, 1), (2, 3, 1), (16, 3, 4), (16, 4, 3), (1, 0, 1), (64, 0, 64)],
)
def test_cores_shared_evenly_among_the_campaigns_processes(
    cores: int, siblings: int, threads: int
) -> None:
    plan = plan_threads(siblings, cores=cores, environ={})
    assert (plan.threads, plan.processes, plan.overridden) == (threads, siblings + 1, False)


def test_override_wins_and_says_so() -> None:
    plan = plan_threads(3, cores=2, environ={"INTERPHASE_THREADS": "6", "OMP_NUM_THREADS": "1"})
    assert plan.threads == 6 and plan.overridden
    assert "INTERPHASE_THREADS" in plan.describe()


def test_omp_num_threads_set_by_the_user_is_respected() -> None:
    assert plan_threads(0, cores=8, environ={"OMP_NUM_THREADS": "1"}).threads == 1
    # OpenMP's nested list form is not a count: the cores are shared as usual.
    assert plan_threads(1, cores=8, environ={"OMP_NUM_THREADS": "4,2"}).threads == 4


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_override_is_one_clear_error(value: str) -> None:
    with pytest.raises(ThreadPolicyError, match="positive integer"):
        plan_threads(0, cores=2, environ={"INTERPHASE_THREADS": value})


def test_negative_siblings_refused() -> None:
    with pytest.raises(ValueError, match="siblings"):
        plan_threads(-1, cores=2, environ={})


def test_child_environment_sets_every_pool_and_short_spinning() -> None:
    env = child_environment(3, environ={})
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert env["GOMP_SPINCOUNT"] == "2000" and "OMP_WAIT_POLICY" not in env
    # A wait policy or spin count the user chose is kept, and nothing overrides it.
    kept = child_environment(1, environ={"OMP_WAIT_POLICY": "PASSIVE"})
    assert kept["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in kept
    assert child_environment(1, environ={"GOMP_SPINCOUNT": "0"})["GOMP_SPINCOUNT"] == "0"


def test_importing_interphase_sets_the_spin_count_unless_the_user_did() -> None:
    code = "import os, interphase; print(os.environ.get('GOMP_SPINCOUNT'))"
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    for extra, expected in (({}, "2000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "None")):
        out = subprocess.run(
            [sys.executable, "-c", code], env={**base, **extra}, capture_output=True, text=True
        )
        assert out.stdout.strip() == expected, out.stderr


def test_limited_threads_restores_the_callers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from interphase.threads import limited_threads

    monkeypatch.setenv("INTERPHASE_THREADS", "1")
    before = torch.get_num_threads()
    with limited_threads() as plan:
        assert torch.get_num_threads() == plan.threads == 1
    assert torch.get_num_threads() == before
