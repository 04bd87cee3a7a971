"""SIGINT and SIGTERM in a worker: stop the calculation, release the job, exit 130/143.

:func:`stop_signals` installs handlers that only note the first signal, so a
database transaction is never cut in half. The worker looks at the note between
steps and while it waits on an isolated calculation; an in-process calculation
runs inside :meth:`StopGuard.raising`, where the signal raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WorkerInterrupted(BaseException):
    """The worker got SIGINT or SIGTERM; its job was put back to pending.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that no ``except
    Exception`` on the way swallows it.
    """

    def __init__(self, signum: int, job_id: int | None = None) -> None:
        super().__init__(signum, job_id)
        self.signum = signum
        self.job_id = job_id

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's status for death by this signal: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum

    def __str__(self) -> str:
        released = "" if self.job_id is None else f"; job {self.job_id} put back to pending"
        return f"interrupted by {self.signal_name}{released}"


class StopGuard:
    """Notes the first stop signal; raises it where the worker allows."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._raising = False

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        """Signal handler: note the signal; raise it inside :meth:`raising`."""
        if self.received is not None:
            return  # a second Ctrl-C while the job is being released changes nothing
        self.received = signum
        if self._raising:
            self._raising = False
            raise WorkerInterrupted(signum)

    def check(self) -> None:
        """Raise :class:`WorkerInterrupted` when a stop signal has arrived."""
        if self.received is not None:
            raise WorkerInterrupted(self.received)

    @contextmanager
    def raising(self) -> Iterator[None]:
        """Let a stop signal raise at once (around an in-process calculation)."""
        self.check()
        self._raising = True
        try:
            yield
        finally:
            self._raising = False


@contextmanager
def stop_signals(enabled: bool = True, guard: StopGuard | None = None) -> Iterator[StopGuard]:
    """A :class:`StopGuard` whose handlers are installed for SIGINT and SIGTERM.

    Handlers can only be installed in the main thread; elsewhere (a flow's
    worker thread, a Dask worker) or with ``enabled`` False the guard fires
    only when its owner stops it (``guard``: a caller's guard, e.g. one that
    also watches a stop flag elsewhere) and signals keep their handlers.
    """
    guard = guard or StopGuard()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous: dict[int, Any] = {sig: signal.signal(sig, guard.handle) for sig in STOP_SIGNALS}
    try:
        yield guard
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
