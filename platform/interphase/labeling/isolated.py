"""Run one engine calculation in its own process, with a time and a memory limit.

A segfault, an out-of-memory kill or a hang then ends only that process: the
worker sees the exit and records the job as failed (``EngineCrashed`` or
``Timeout``) with the tail of the child's output, and goes on with the next
job. Children come from a fork server that has the engine modules preloaded,
so starting one costs milliseconds, and they never inherit the worker's
threads or database connections in use.

Each child runs in its own process group (so a program it starts, like the
``psi4`` executable, dies with it), dies with its parent (``PR_SET_PDEATHSIG``),
and has its address space capped with ``RLIMIT_AS`` when a memory limit is set.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from interphase.labeling.engine import (
    Calculation,
    EngineCrashed,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    InvalidInput,
    LabelingEngine,
    SCFNotConverged,
)
from interphase.records import LabelRecord, StructureRecord

LOG_TAIL_CHARS = 4000
PR_SET_PDEATHSIG = 1
ERROR_CLASSES: dict[str, type[EngineError]] = {
    cls.error_class: cls
    for cls in (SCFNotConverged, EngineTimeout, EngineCrashed, InvalidInput, EngineUnavailable)
}


@dataclass(frozen=True)
class Limits:
    """Resource limits of one calculation (None: unlimited)."""

    time_limit_s: float | None = None
    memory_limit_mb: float | None = None


@dataclass
class ProcessReport:
    """How the child process ended (recorded on the job attempt)."""

    pid: int | None = None
    exit_code: int | None = None
    peak_memory_mb: float | None = None


class LeaseLost(RuntimeError):
    """The worker lost its lease while the calculation ran; the child was stopped."""


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["interphase.labeling.engines", "interphase.labeling.isolated"])
    return context


def run_isolated(
    engine: LabelingEngine,
    structure: StructureRecord,
    calculation: Calculation,
    limits: Limits,
    report: ProcessReport,
    *,
    on_start: Callable[[int], None] | None = None,
    keep_going: Callable[[], bool] | None = None,
    poll_s: float = 0.5,
) -> LabelRecord:
    """``engine.compute(structure, calculation)`` in a child process.

    Parameters
    ----------
    limits
        Wall-time (s) and address-space (MB) limits of the child.
    report
        Filled in with the child's pid, exit code and peak resident memory.
    on_start
        Called with the child's pid once it runs.
    keep_going
        Polled every ``poll_s``; when it returns False the child is killed and
        :class:`LeaseLost` raised.

    Raises
    ------
    EngineError
        The engine's own error, ``EngineTimeout`` past the time limit, or
        ``EngineCrashed`` when the child died (signal, out of memory, exit).
    """
    with tempfile.TemporaryDirectory(prefix="interphase-job-") as scratch:
        log_path = Path(scratch) / "child.log"
        receiver, sender = _context().Pipe(duplex=False)
        process = _context().Process(
            target=_child_main,
            args=(sender, engine, structure, calculation, limits.memory_limit_mb, str(log_path)),
            name=f"interphase-{engine.name}",
        )
        process.start()
        sender.close()
        report.pid = process.pid
        if on_start is not None:
            on_start(process.pid)
        try:
            message = _wait(process, receiver, limits, keep_going, poll_s, log_path)
        finally:
            _kill_group(process.pid)
            process.join(5)
            receiver.close()
        report.exit_code = process.exitcode
        return _result(message, report, process.exitcode, limits, log_path)


def _wait(
    process: Any,
    receiver: Connection,
    limits: Limits,
    keep_going: Callable[[], bool] | None,
    poll_s: float,
    log_path: Path,
) -> Any:
    deadline = None if limits.time_limit_s is None else time.monotonic() + limits.time_limit_s
    while True:
        ready = wait([receiver, process.sentinel], timeout=poll_s)
        if receiver in ready:
            try:
                return receiver.recv()
            except EOFError:
                return None  # died after closing its end: treated as a crash below
        if process.sentinel in ready:
            return receiver.recv() if receiver.poll() else None
        if keep_going is not None and not keep_going():
            raise LeaseLost("the job's lease was lost; its calculation was stopped")
        if deadline is not None and time.monotonic() > deadline:
            raise EngineTimeout(
                f"calculation exceeded its time limit of {limits.time_limit_s:g} s and was killed",
                log_tail=_tail(log_path),
            )


def _result(
    message: Any, report: ProcessReport, exit_code: int | None, limits: Limits, log_path: Path
) -> LabelRecord:
    if message is None:
        how = (
            f"killed by signal {signal.Signals(-exit_code).name}"
            if exit_code is not None and exit_code < 0
            else f"exited with status {exit_code}"
        )
        hint = ""
        if exit_code == -signal.SIGKILL and limits.memory_limit_mb is not None:
            hint = f" (out of memory? limit {limits.memory_limit_mb:g} MB)"
        raise EngineCrashed(f"engine process {how}{hint}", log_tail=_tail(log_path))
    kind, payload, peak_mb = message
    report.peak_memory_mb = peak_mb
    if kind == "ok":
        assert isinstance(payload, LabelRecord)
        return payload
    error_class, text, log_tail = payload
    cls = ERROR_CLASSES.get(error_class, EngineCrashed)
    raise cls(text, log_tail=log_tail or _tail(log_path))


def _child_main(
    sender: Connection,
    engine: LabelingEngine,
    structure: StructureRecord,
    calculation: Calculation,
    memory_limit_mb: float | None,
    log_path: str,
) -> None:
    os.setpgrp()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if memory_limit_mb is not None:
        limit = int(memory_limit_mb * 1024 * 1024)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        label = engine.compute(structure, calculation)
        message: tuple[str, Any, float] = ("ok", label, _peak_mb())
    except EngineError as error:
        message = ("error", (error.error_class, str(error), error.log_tail), _peak_mb())
    except MemoryError:
        text = f"out of memory (limit {memory_limit_mb} MB)"
        message = ("error", ("EngineCrashed", text, traceback.format_exc()), _peak_mb())
    except Exception as error:  # an engine bug still ends as a recorded failure
        text = f"{type(error).__name__}: {error}"
        message = ("error", ("EngineCrashed", text, traceback.format_exc()), _peak_mb())
    sys.stdout.flush()
    sys.stderr.flush()
    sender.send(message)
    sender.close()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _kill_group(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path) -> str | None:
    if not path.exists():
        return None
    text = path.read_text(errors="replace")
    return text[-LOG_TAIL_CHARS:] or None
