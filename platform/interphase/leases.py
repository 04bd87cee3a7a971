"""Leases kept alive by a heartbeat: a labeling job's, a campaign's lock.

A holder names itself (:func:`holder_name`), takes a lease that expires unless
renewed, and renews it from a :class:`Heartbeat` thread while it works. A
holder that dies stops renewing: its lease expires and another may take over.
What a lease is (a job row, a campaign row) and how it is renewed is the
caller's ``renew`` function; the beat, its stop and the "lost" flag are here.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from types import TracebackType


def holder_name() -> str:
    """A lease holder's id, unique across hosts and processes: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Heartbeat:
    """Calls ``renew`` every ``interval_s`` from a background thread while the block runs.

    ``renew`` returns False once the lease is no longer the holder's (taken
    over after it expired): the beat then stops and :attr:`alive` turns False.
    ``renew`` deals with its own transient errors (logs them and returns True,
    so the next beat tries again); an error it raises ends the beat.

    Parameters
    ----------
    renew
        Extends the lease; False when it is lost.
    interval_s
        Seconds between renewals (a fraction of the lease, so that one missed
        renewal costs nothing).
    name
        The thread's name.
    """

    def __init__(self, renew: Callable[[], bool], *, interval_s: float, name: str) -> None:
        self.renew, self.interval_s = renew, interval_s
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=name, daemon=True)

    @property
    def alive(self) -> bool:
        """False once a renewal found the lease taken away."""
        return not self._lost.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and wait for the thread (a renewal in progress completes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self.renew():
                self._lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
