"""Ending a calculation's processes: kill them and return only once every one has exited.

An isolated calculation leads a process group of its own (the engine process,
its watchdog and any program the engine started, such as ``psi4``). A signal
is only a request the kernel carries out when the process next runs, so a
worker that sent SIGKILL and went on could exit while its calculation's
processes still existed: a scheduler (SLURM, a shell, Prefect) that saw the
worker end would find them. :func:`end_group` therefore kills the group and
waits, on a pidfd of each member, until none is left.

The engine process is also killed by itself (:func:`kill_process`): until it
has called ``setpgrp`` its group does not exist yet, and a signal to the group
would miss it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from interphase.processes import readable

#: The longest a worker waits for killed processes to exit (a hang guard; they
#: exit within milliseconds of a SIGKILL unless stuck in the kernel).
GROUP_EXIT_S = 60.0
#: How often membership is read again while waiting (a member may have forked).
RESCAN_S = 1.0


def open_pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (signals through it never reach a reused pid); None if unavailable."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):  # gone already, or no pidfd (kernel < 5.3)
        return None


def kill_process(pid: int, pidfd: int | None) -> None:
    """SIGKILL ``pid`` (through ``pidfd`` when there is one); a process gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in process group ``pgid`` that have not exited (zombies have)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):  # exited meanwhile
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


def end_group(pgid: int, timeout_s: float = GROUP_EXIT_S) -> list[int]:
    """SIGKILL process group ``pgid`` and wait until none of its processes is left.

    Returns the members still there after ``timeout_s`` (normally none).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        members = group_members(pgid)
        left_s = deadline - time.monotonic()
        if not members or left_s <= 0:
            return members
        wait_exited(members, min(left_s, RESCAN_S))


def wait_exited(pids: Iterable[int], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` until every process in ``pids`` has exited; whether they have."""
    deadline = time.monotonic() + timeout_s
    pidfds = {pid: open_pidfd(pid) for pid in pids}
    try:
        waiting = [fd for fd in pidfds.values() if fd is not None]
        while waiting:  # a pidfd becomes readable when its process exits
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return False
            ready = readable(waiting, left_s)
            waiting = [fd for fd in waiting if fd not in ready]
        # Without pidfds (or for pids gone before one was opened), read /proc.
        others = [pid for pid, fd in pidfds.items() if fd is None]
        while any(_running(pid) for pid in others):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True
    finally:
        for fd in pidfds.values():
            if fd is not None:
                os.close(fd)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")
