"""How many threads this process's numerical libraries may use: the thread policy.

A campaign shares its machine: with its own labeling workers and GP fit
processes, and on a login node or a busy workstation with other people's work.
Torch's and BLAS's OpenMP threads that outnumber the cores left to them, or
that spin while they wait, make training 10-30x slower under load instead of
the 2-3x that fair sharing costs. The policy:

1. **Cores available** (:func:`available_cores`): the CPUs this process may run
   on (``sched_getaffinity``), capped by a cgroup CPU quota (``cpu.max`` in
   cgroup v2, ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` in v1), as a container
   or a batch job grants them; ``os.cpu_count()`` sees neither.
2. **Threads per process** (:func:`plan_threads`): those cores shared evenly
   among the processes of the campaign that compute at once (this one and
   ``siblings`` more: queue workers, GP fit processes), at least one.
3. **Short spinning**: libgomp (torch's OpenMP runtime on Linux) lets an idle
   thread spin for ``GOMP_SPINCOUNT`` iterations before it sleeps, 300,000 by
   default: under load those spins steal the cores other processes need. The
   policy sets 2,000 (a few microseconds), measured in ``bench/training_under_load.py``
   against full passive waiting (``OMP_WAIT_POLICY=PASSIVE``, 30 % slower idle)
   and the default (9× slower beside three busy processes). It must be in the
   environment before the runtime loads (libgomp reads it once, at load):
   importing :mod:`interphase` calls :func:`prefer_short_spinning`, and
   :func:`child_environment` puts it into every child's environment. A wait
   policy or spin count you set yourself is left as it is.

Training (:func:`~interphase.training.trainer.train_multihead`) and MD
(:func:`~interphase.dynamics.run_md`) run inside :func:`limited_threads`; the
labeling workers and GP fit processes get :func:`child_environment` for their
share of the cores.

The override: ``INTERPHASE_THREADS=N`` (a positive integer) sets the threads per
process outright, e.g. for a benchmark or on a node known to be reserved; an
``OMP_NUM_THREADS`` set in the environment is respected in the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Environment variable that overrides the planned threads per process.
THREADS_ENV = "INTERPHASE_THREADS"
#: The thread-count variables that OpenMP, OpenBLAS, MKL and BLIS read at load time.
THREAD_COUNT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: OMP_NUM_THREADS as this process started with it (from its user or its parent's
#: policy): what it sets later for its own children must not change its own plans.
_STARTED_WITH_OMP = os.environ.get("OMP_NUM_THREADS", "")


class ThreadPolicyError(ValueError):
    """The thread override is not a positive integer."""


def affinity_cores() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def cgroup_quota_cores(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or None if unlimited.

    Reads cgroup v2's ``cpu.max`` ("200000 100000" = 2 cores, "max 100000" =
    unlimited) or cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
    (quota -1 = unlimited), at ``root`` (the cgroup mount as the process sees it).
    """
    v2 = root / "cpu.max"
    if v2.is_file():
        return _quota(*_read(v2).split()[:2])
    v1 = root / "cpu" if (root / "cpu").is_dir() else root
    quota, period = v1 / "cpu.cfs_quota_us", v1 / "cpu.cfs_period_us"
    if quota.is_file() and period.is_file():
        return _quota(_read(quota), _read(period))
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _quota(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max", or unreadable
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def available_cores(root: Path = CGROUP_ROOT) -> int:
    """The cores this process can use: its affinity, capped by the cgroup quota (rounded up)."""
    cores = affinity_cores()
    quota = cgroup_quota_cores(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return cores


def override_threads(environ: dict[str, str] | None = None) -> int | None:
    """The threads set by ``INTERPHASE_THREADS``, else by ``OMP_NUM_THREADS``; None when unset.

    ``OMP_NUM_THREADS`` is read as the process started with it (``environ`` given:
    from there), so a value this process sets for its children changes nothing here.

    A malformed ``INTERPHASE_THREADS`` is an error; a malformed ``OMP_NUM_THREADS``
    (e.g. a list such as "4,2", which OpenMP allows) is ignored here.
    """
    source = environ if environ is not None else os.environ
    raw = source.get(THREADS_ENV, "").strip()
    omp = (source.get("OMP_NUM_THREADS", "") if environ is not None else _STARTED_WITH_OMP).strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ThreadPolicyError(
                f"{THREADS_ENV}={raw!r} is not a positive integer: set it to the threads "
                "per process (e.g. 1) or unset it to share the available cores"
            )
        return value
    return int(omp) if omp.isdecimal() and int(omp) >= 1 else None


@dataclass(frozen=True)
class ThreadPlan:
    """Threads per process for this machine and this campaign's concurrent processes."""

    cores: int
    processes: int
    threads: int
    overridden: bool

    def describe(self) -> str:
        if self.overridden:
            return f"{self.threads} thread(s) per process ({THREADS_ENV} or OMP_NUM_THREADS)"
        return (
            f"{self.threads} thread(s) per process: {self.cores} core(s) available "
            f"shared by {self.processes} process(es)"
        )


def plan_threads(
    siblings: int = 0, *, cores: int | None = None, environ: dict[str, str] | None = None
) -> ThreadPlan:
    """Threads for each of ``1 + siblings`` processes computing at once on ``cores`` cores.

    ``cores`` defaults to :func:`available_cores`. The cores are shared evenly,
    rounding down, with at least one thread each; ``INTERPHASE_THREADS`` wins.
    """
    if siblings < 0:
        raise ValueError(f"siblings must be 0 or more, got {siblings}")
    processes = 1 + siblings
    override = override_threads(environ)
    n_cores = cores if cores is not None else available_cores()
    if override is not None:
        return ThreadPlan(n_cores, processes, override, overridden=True)
    return ThreadPlan(n_cores, processes, max(1, n_cores // processes), overridden=False)


#: libgomp spin iterations before an idle thread sleeps (its default is 300,000).
SPIN_COUNT = "2000"


def prefer_short_spinning(environ: dict[str, str] | None = None) -> None:
    """Ask libgomp runtimes loaded after this to spin briefly, then sleep, while they wait.

    Left alone when ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is already set.
    """
    target = environ if environ is not None else os.environ
    if "OMP_WAIT_POLICY" not in target:
        target.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)


def child_environment(threads: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment entries for a child process that should use ``threads`` threads.

    Sets every library's thread-count variable and the short spin count, except
    where ``environ`` (default: this process's) sets a wait policy or spin count.
    """
    source = environ if environ is not None else os.environ
    entries = {name: str(threads) for name in THREAD_COUNT_VARIABLES}
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if name in source:
            entries[name] = source[name]
    prefer_short_spinning(entries)
    return entries


@contextlib.contextmanager
def limited_threads(siblings: int = 0) -> Iterator[ThreadPlan]:
    """Within the block, torch and the loaded BLAS pools use the planned threads.

    Torch's previous intra-op thread count and the BLAS limits are restored
    afterwards, so a library call leaves its caller's settings as they were.
    """
    import torch

    plan = plan_threads(siblings)
    before = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        limits: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=plan.threads)
    try:
        with limits:
            yield plan
    finally:
        torch.set_num_threads(before)
