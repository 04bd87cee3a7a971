"""The calculation process of an isolated run: cap memory, compute, reply, and a watchdog.

The child leads a process group of its own and first forks a tiny watchdog into
it, which kills the whole group the moment the worker dies
(:func:`child_main`); the calculation then runs with its output going to the
log file, and the child sends back a :class:`ChildReply`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from interphase.labeling.engines.contract import (
    Calculation,
    EngineCrashed,
    EngineError,
    LabelingEngine,
    OutOfMemory,
)
from interphase.processes import die_with_parent_preexec, readable
from interphase.records import LabelRecord, StructureRecord


@dataclass(frozen=True)
class ChildReply:
    """What the child sends back: a label, or the error class, message and log tail."""

    label: LabelRecord | None
    error_class: str | None = None
    message: str = ""
    log_tail: str | None = None
    peak_memory_mb: float | None = None


def child_main(
    sender: Connection,
    engine: LabelingEngine,
    structure: StructureRecord,
    calculation: Calculation,
    memory_limit_mb: float | None,
    worker_pid: int,
) -> None:
    os.setpgrp()
    watchdog, watching = _start_watchdog(worker_pid, keep_open=sender.fileno())
    with contextlib.suppress(OSError, AttributeError):  # a second line of defence only
        die_with_parent_preexec()
    assert calculation.log_path is not None  # run_isolated always gives one
    log = os.open(calculation.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    reply = _compute(engine, structure, calculation, memory_limit_mb)
    sys.stdout.flush()
    sys.stderr.flush()
    sender.send(reply)
    sender.close()
    os.close(watching)  # the watchdog exits; reaped here so that it never outlives this process
    os.waitpid(watchdog, 0)


def _compute(
    engine: LabelingEngine,
    structure: StructureRecord,
    calculation: Calculation,
    memory_limit_mb: float | None,
) -> ChildReply:
    try:
        if memory_limit_mb is not None:
            calculation = _cap_memory(engine, calculation, memory_limit_mb)
        return ChildReply(engine.compute(structure, calculation), peak_memory_mb=_peak_mb())
    except EngineError as error:
        return ChildReply(None, error.error_class, str(error), error.log_tail, _peak_mb())
    except MemoryError:
        text = f"out of memory (limit {memory_limit_mb:g} MB)" if memory_limit_mb else "MemoryError"
        return ChildReply(None, OutOfMemory.error_class, text, traceback.format_exc(), _peak_mb())
    except Exception as error:  # an engine bug still ends as a recorded failure
        text = f"{type(error).__name__}: {error}"
        return ChildReply(None, EngineCrashed.error_class, text, traceback.format_exc(), _peak_mb())


def _cap_memory(
    engine: LabelingEngine, calculation: Calculation, memory_limit_mb: float
) -> Calculation:
    """Load the engine, fit its memory setting to the limit, then cap the address space."""
    with contextlib.suppress(ImportError):  # compute() then says what to install
        engine.preload()
    in_use_mb = address_space_mb()
    if in_use_mb >= memory_limit_mb:
        raise OutOfMemory(
            f"the memory limit of {memory_limit_mb:g} MB is below the {in_use_mb:.0f} MB of "
            f"address space the {engine.name} process takes once loaded: give the job a "
            "larger memory_limit_mb"
        )
    calculation = engine.fit_memory(calculation, memory_limit_mb - in_use_mb)
    limit = int(memory_limit_mb * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return calculation


def address_space_mb() -> float:
    """This process's virtual memory size (MB), what ``RLIMIT_AS`` counts."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return float(line.split()[1]) / 1024.0  # kB
    return 0.0


def _start_watchdog(worker_pid: int, *, keep_open: int) -> tuple[int, int]:
    """Fork a process into this process group that kills the group when the worker dies.

    It also exits, doing nothing, when this process ends or closes the pipe
    end it returns. ``keep_open`` is the child's result pipe, which the
    watchdog closes. Returns the watchdog's pid and that pipe end.
    """
    ended_r, ended_w = os.pipe()  # not inherited by programs the engine starts
    watchdog = os.fork()
    if watchdog != 0:
        os.close(ended_r)
        return watchdog, ended_w
    try:
        os.close(ended_w)
        os.close(keep_open)
        _watch(worker_pid, ended_r)
    finally:
        os._exit(0)


def _watch(worker_pid: int, ended_r: int) -> None:
    try:
        pidfd: int | None = os.pidfd_open(worker_pid)
    except ProcessLookupError:
        _kill_own_group()  # the worker died before we could watch it
        return
    except (OSError, AttributeError):  # no pidfd (kernel < 5.3): poll the pid instead
        pidfd = None
    while True:
        watched = [ended_r] if pidfd is None else [ended_r, pidfd]
        ready = readable(watched, 0.5 if pidfd is None else None)
        if ended_r in ready:
            return
        if (pidfd is not None and pidfd in ready) or (pidfd is None and not _alive(worker_pid)):
            _kill_own_group()
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_own_group() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
