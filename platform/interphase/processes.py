"""Processes that never outlive the process that owns them.

Every child this platform starts (labeling workers, GP fit and map processes,
import producers, a local Prefect server) asks the kernel to kill it when its
parent dies, even by ``kill -9``: :func:`die_with_parent` in a forked or
spawned child, :func:`die_with_parent_preexec` as the ``preexec_fn`` of a
``subprocess.Popen`` before ``exec``.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Sequence

#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1


def _request_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return True


def die_with_parent(parent_pid: int, exit_code: int = 1) -> None:
    """End this process when ``parent_pid`` (its parent) dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; elsewhere a daemon thread polls
    the parent pid once a second. Either way, exit at once with ``exit_code``
    when the parent is already gone (it died before the request was in place).
    """
    if not _request_parent_death_signal():

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(exit_code)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(exit_code)


def die_with_parent_preexec() -> None:  # pragma: no cover - runs in the child before exec
    """``preexec_fn`` for ``subprocess.Popen``: the program is killed when its parent dies."""
    _request_parent_death_signal()


def readable(fds: Sequence[int], timeout_s: float | None) -> list[int]:
    """Those of ``fds`` that are readable (or hung up) within ``timeout_s`` (None: no limit).

    poll(2), not select(2): select refuses descriptors numbered 1024 and above,
    which a long-lived process (a worker, a test session) reaches.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    timeout_ms = None if timeout_s is None else max(0.0, timeout_s) * 1000.0
    return [fd for fd, _events in poller.poll(timeout_ms)]
