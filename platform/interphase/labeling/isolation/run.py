"""Run one engine calculation in its own process, with a time and a memory limit.

A segfault, an out-of-memory kill or a hang then ends only that process: the
worker sees the exit and records the job as failed (``EngineCrashed``,
``OutOfMemory`` or ``Timeout``) with the exit code and the tail of the
child's log, and goes on with the next job. Children come from a fork server
that has the engine modules preloaded, so starting one costs milliseconds, and
they never inherit the worker's threads or database connections in use.

A calculation never outlives its worker. The child's parent is the fork
server, not the worker, so "die with the parent" (``PR_SET_PDEATHSIG``) does
not see the worker die. Instead each child runs in its own process group and
first forks a tiny watchdog into that group, which waits on a pidfd of the
worker and kills the whole group (the child, any program it started such as
``psi4``, and itself) the moment the worker dies, however busy the child is in
C code.

A calculation's processes are also gone when its worker goes on: when it is
stopped (time limit, lost lease, a stop signal) the child itself and its
process group are killed, and the worker waits until every one of them has
exited (:mod:`interphase.labeling.isolation.process_group`) and the child's exit status
has come, so the attempt records it (-9 for a kill). The worker then appends a
line to the child's log saying how the engine process ended, after how long
and why it was stopped, so every attempt's tail says it, even where the engine
had written nothing yet.

Under a memory limit the child first imports the engine's modules
(:meth:`~interphase.labeling.engines.contract.LabelingEngine.preload`), then fits the
engine's own memory setting to what the limit leaves
(:meth:`~interphase.labeling.engines.contract.LabelingEngine.fit_memory`), and only then
caps its address space with ``RLIMIT_AS``: an import under the cap would fail
as if the engine were not installed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from interphase.labeling.engines.contract import (
    ERROR_CLASSES,
    Calculation,
    EngineCrashed,
    EngineError,
    EngineTimeout,
    LabelingEngine,
    OutOfMemory,
)
from interphase.labeling.isolation.child import ChildReply, child_main
from interphase.labeling.isolation.forkserver import fork_server_context
from interphase.labeling.isolation.process_group import (
    GROUP_EXIT_S,
    end_group,
    kill_process,
    open_pidfd,
)
from interphase.labeling.logtail import tail_of_file
from interphase.records import LabelRecord, StructureRecord

#: How long a child that has sent its result may take to exit by itself before
#: its process group is killed (it normally exits within milliseconds).
EXIT_GRACE_S = 30.0
#: Log lines that mean an allocation failed (C, C++, numpy, Fortran runtimes).
ALLOCATION_FAILURE = re.compile(
    r"cannot allocate memory|bad_alloc|out of memory|memoryerror|unable to allocate|"
    r"failed to allocate|allocation fail",
    re.IGNORECASE,
)


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
    #: The end of the child's log, read however it ended (killed ones included).
    log_tail: str | None = None


class LeaseLost(RuntimeError):
    """The worker lost its lease while the calculation ran; the child was stopped."""


def run_isolated(
    engine: LabelingEngine,
    structure: StructureRecord,
    calculation: Calculation,
    limits: Limits,
    report: ProcessReport,
    *,
    on_start: Callable[[int], None] | None = None,
    check_in: Callable[[], None] | None = None,
    poll_s: float = 0.5,
) -> LabelRecord:
    """``engine.compute(structure, calculation)`` in a child process.

    However the calculation ends, every process it started has exited when
    this returns or raises, and its log ends with a line saying how it ended.
    Call it within :func:`~interphase.labeling.isolation.forkserver.calculation_servers`
    so that the fork server does not outlive the caller either.

    Parameters
    ----------
    limits
        Wall-time (s) and address-space (MB) limits of the child.
    report
        Filled in with the child's pid, exit code, peak resident memory and
        log tail, however the calculation ends.
    on_start
        Called with the child's pid once it runs.
    check_in
        Called every ``poll_s`` while the child runs; whatever it raises
        (:class:`LeaseLost`, an interruption) stops the child and propagates.

    Raises
    ------
    EngineError
        The engine's own error, ``EngineTimeout`` past the time limit,
        ``OutOfMemory``, or ``EngineCrashed`` when the child died otherwise.
    """
    with tempfile.TemporaryDirectory(prefix="interphase-job-") as scratch:
        log_path = Path(scratch) / "child.log"
        calculation = replace(calculation, log_path=str(log_path))
        context = fork_server_context()
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=child_main,
            args=(sender, engine, structure, calculation, limits.memory_limit_mb, os.getpid()),
            name=f"interphase-{engine.name}",
        )
        started = time.monotonic()
        process.start()
        sender.close()
        report.pid = process.pid
        pidfd = open_pidfd(process.pid)
        waited = Waited(None)
        stopped_by = ""
        try:
            if on_start is not None:
                on_start(process.pid)
            waited = _wait(process, receiver, limits, check_in, poll_s)
            if waited.timed_out:
                stopped_by = f"time limit of {limits.time_limit_s:g} s exceeded"
            else:
                process.join(EXIT_GRACE_S)  # its own exit code, not the -9 of a kill below
        except BaseException as stop:  # noted in the log, then raised on
            stopped_by = str(stop) or type(stop).__name__
            raise
        finally:
            _end_child(process, pidfd)
            receiver.close()
            report.exit_code = process.exitcode
            _note_ending(log_path, report, time.monotonic() - started, stopped_by)
            report.log_tail = tail_of_file(log_path)
        if waited.timed_out:
            raise EngineTimeout(
                f"calculation exceeded its time limit of {limits.time_limit_s:g} s and was "
                "killed (SIGKILL)",
                log_tail=report.log_tail,
            )
        return _result(waited.reply, report, limits, log_path)


@dataclass(frozen=True)
class Waited:
    """How waiting on the child ended: its reply (None: it died without one), or the time limit."""

    reply: ChildReply | None
    timed_out: bool = False


def _wait(
    process: Any,
    receiver: Connection,
    limits: Limits,
    check_in: Callable[[], None] | None,
    poll_s: float,
) -> Waited:
    deadline = None if limits.time_limit_s is None else time.monotonic() + limits.time_limit_s
    while True:
        ready = wait([receiver, process.sentinel], timeout=poll_s)
        if receiver in ready:
            try:
                reply: ChildReply = receiver.recv()
                return Waited(reply)
            except EOFError:
                return Waited(None)  # died after closing its end: treated as a crash below
        if process.sentinel in ready:
            return Waited(receiver.recv() if receiver.poll() else None)
        if check_in is not None:
            check_in()
        if deadline is not None and time.monotonic() > deadline:
            return Waited(None, timed_out=True)


def _end_child(process: Any, pidfd: int | None) -> None:
    """Kill the child unless it exited, and return once it and its process group are gone.

    The child itself is killed, not only its group: until it has called
    ``setpgrp`` (a child still starting, e.g. under load) the group does not
    exist and a signal to it would miss the child.
    """
    try:
        if process.exitcode is None:
            kill_process(process.pid, pidfd)
        process.join(GROUP_EXIT_S)  # its exit status, which the fork server sends once reaped
        end_group(process.pid)  # its watchdog and any program the engine started
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _note_ending(log_path: Path, report: ProcessReport, wall_s: float, stopped_by: str) -> None:
    """Append how the engine process ended to its log, so that every tail says it."""
    code = report.exit_code
    if code is None:
        how = f"gave no exit status within {GROUP_EXIT_S:g} s of being killed"
    elif code < 0:
        how = f"was killed by {signal.Signals(-code).name} (exit code {code})"
    else:
        how = f"exited with status {code}"
    why = f" ({stopped_by})" if stopped_by else ""
    with contextlib.suppress(OSError), open(log_path, "a") as log:  # e.g. a full disk: no note
        log.write(f"[interphase] engine process {report.pid} {how} after {wall_s:.2f} s{why}\n")


def _result(
    reply: ChildReply | None, report: ProcessReport, limits: Limits, log_path: Path
) -> LabelRecord:
    if reply is None:
        raise _death(report.exit_code, limits, tail_of_file(log_path))
    report.peak_memory_mb = reply.peak_memory_mb
    if reply.label is not None:
        return reply.label
    cls = ERROR_CLASSES.get(reply.error_class or "", EngineCrashed)
    tail = reply.log_tail or tail_of_file(log_path)
    if (
        cls is EngineCrashed
        and limits.memory_limit_mb is not None
        and _allocation_failed(reply.message, tail)
    ):
        cls = OutOfMemory
    raise cls(reply.message, log_tail=tail)


def _death(exit_code: int | None, limits: Limits, tail: str | None) -> EngineError:
    """The error of a child that died without replying."""
    how = (
        f"killed by signal {signal.Signals(-exit_code).name}"
        if exit_code is not None and exit_code < 0
        else f"exited with status {exit_code}"
    )
    limit = limits.memory_limit_mb
    if limit is not None and (exit_code == -signal.SIGKILL or _allocation_failed("", tail)):
        return OutOfMemory(
            f"engine process {how} under its memory limit of {limit:g} MB (out of memory)",
            log_tail=tail,
        )
    return EngineCrashed(f"engine process {how}", log_tail=tail)


def _allocation_failed(message: str, tail: str | None) -> bool:
    return bool(ALLOCATION_FAILURE.search(message) or ALLOCATION_FAILURE.search(tail or ""))
