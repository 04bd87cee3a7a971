"""The fork server isolated calculations come from, stopped before its worker ends.

multiprocessing starts two helper processes on demand and never waits for
them: the fork server (with the engine modules preloaded, so a calculation
starts in milliseconds) and the resource tracker. Each exits only once it
reads end-of-file on a pipe whose other end its starter holds, which happens
as that process exits, so they outlive a worker by a moment (under load, by
much more). Whatever ran the worker and saw it end (SLURM, a shell, Prefect,
a test) could still find them.

:func:`calculation_servers` scopes them: when the outermost scope of a process
ends, the servers started within it are asked to stop (their pipe closed), waited
for (SIGKILL after :data:`SERVER_EXIT_GRACE_S`) and reaped. Scopes nest and
may be entered by several threads at once (Dask worker threads); the servers
stop when the last one leaves. A server that ran before the scope began is
someone else's and left alone.

CPython has no public way to stop either server (its tests call the private
``_stop``, which waits without a bound), so :func:`stop_fork_server` and
:func:`stop_resource_tracker` do what ``_stop`` does, with a bounded wait.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing import forkserver, resource_tracker, util
from typing import Any

from interphase.labeling.isolation.process_group import open_pidfd
from interphase.processes import readable

#: Modules the fork server imports once, so that each calculation starts fast: ours,
#: and the engines' libraries, which the engine modules import lazily (PySCF alone
#: costs ~0.6 s per fresh process). The fork server skips any that is not installed.
PRELOAD = [
    "interphase.labeling.engines",
    "interphase.labeling.isolation.run",
    "tblite.interface",
    # The PySCF engine's calculation pulls in most of PySCF (pyscf.__all__: ~200 modules,
    # ~0.3 s per fresh process) and importlib.metadata's email parser (engine versions).
    "pyscf.__all__",
    "email.parser",
    "gpaw",
]
#: How long a server asked to stop may take to exit before it is killed.
SERVER_EXIT_GRACE_S = 10.0

_scope_lock = threading.Lock()
_scope_depth = 0
#: Whether the fork server and the resource tracker ran when the outermost scope began.
_ran_before = (False, False)


def fork_server_context() -> Any:
    """The multiprocessing context that starts calculations from the preloaded fork server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


@contextlib.contextmanager
def calculation_servers() -> Iterator[None]:
    """Stop, when the outermost scope ends, the fork server and tracker started within it."""
    global _scope_depth, _ran_before
    with _scope_lock:
        if _scope_depth == 0:
            _ran_before = (_fork_server_pid() is not None, _tracker_pid() is not None)
        _scope_depth += 1
    try:
        yield
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0:
                fork_server_ran, tracker_ran = _ran_before
                if not fork_server_ran:
                    stop_fork_server()
                if not tracker_ran:  # after the fork server, which holds its pipe too
                    stop_resource_tracker()


def _fork_server() -> Any:
    """CPython's one ``ForkServer`` (typed Any: its state is private, see the module note)."""
    return forkserver._forkserver


def _resource_tracker() -> Any:
    """CPython's one ``ResourceTracker`` (typed Any, like :func:`_fork_server`)."""
    return resource_tracker._resource_tracker


#: The private state of CPython's servers (3.11-3.13) that stopping them uses.
FORK_SERVER_STATE = ("_lock", "_forkserver_pid", "_forkserver_alive_fd", "_forkserver_address")
TRACKER_STATE = ("_lock", "_pid", "_fd")


def _known(server: Any, state: tuple[str, ...]) -> bool:
    """Whether ``server`` has the state this module expects (another Python: left alone)."""
    return all(hasattr(server, name) for name in state)


def _fork_server_pid() -> int | None:
    pid: int | None = getattr(_fork_server(), "_forkserver_pid", None)
    return pid


def _tracker_pid() -> int | None:
    pid: int | None = getattr(_resource_tracker(), "_pid", None)
    return pid


def stop_fork_server(grace_s: float = SERVER_EXIT_GRACE_S) -> int | None:
    """Stop the fork server this process started and reap it; its exit status, None if none ran.

    Its calculations must have ended: it exits once every holder of its
    "alive" pipe (this process and each calculation) has closed it.
    """
    server = _fork_server()
    if not _known(server, FORK_SERVER_STATE):
        return None
    with server._lock:
        pid = server._forkserver_pid
        if pid is None:
            return None
        os.close(server._forkserver_alive_fd)  # end-of-file there asks it to exit
        address = server._forkserver_address
        server._forkserver_pid = server._forkserver_alive_fd = None
        server._forkserver_address = None
        status = reap_child(pid, grace_s)
    if address and not util.is_abstract_socket_namespace(address):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)
    return status


def stop_resource_tracker(grace_s: float = SERVER_EXIT_GRACE_S) -> int | None:
    """Stop the resource tracker this process started and reap it; its exit status, or None.

    A tracker inherited from a parent process (``spawn``) is the parent's and
    left alone.
    """
    tracker = _resource_tracker()
    if not _known(tracker, TRACKER_STATE):
        return None
    with tracker._lock:
        pid, fd = tracker._pid, tracker._fd
        if pid is None or fd is None:
            return None
        os.close(fd)  # end-of-file there asks it to exit
        tracker._pid = tracker._fd = None
        return reap_child(pid, grace_s)


def reap_child(pid: int, grace_s: float) -> int | None:
    """Wait up to ``grace_s`` for child ``pid`` to exit, SIGKILL it if it has not, and reap it.

    Returns its exit code (negative: killed by that signal), or None when it
    is not this process's child (nothing is sent to it then).
    """
    try:
        if not _exits_within(pid, grace_s):
            os.kill(pid, signal.SIGKILL)  # an unreaped child: its pid cannot be reused yet
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _exits_within(pid: int, timeout_s: float) -> bool:
    """Whether child ``pid`` exits within ``timeout_s`` (it is not reaped here).

    Raises ChildProcessError when ``pid`` is not a child of this process.
    """
    deadline = time.monotonic() + timeout_s
    not_reaped = os.WEXITED | os.WNOHANG | os.WNOWAIT
    if os.waitid(os.P_PID, pid, not_reaped) is not None:
        return True
    pidfd = open_pidfd(pid)
    if pidfd is not None:  # readable once the process has exited
        try:
            return bool(readable([pidfd], timeout_s))
        finally:
            os.close(pidfd)
    while os.waitid(os.P_PID, pid, not_reaped) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
