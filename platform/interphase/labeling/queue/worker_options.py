"""How a worker runs jobs: lease, heartbeat, default limits, retries (:class:`WorkerOptions`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from interphase.labeling.queue.retry import RetryPolicy

#: Shortest lease a worker accepts (s). A renewal is one short write transaction
#: that may queue behind other writers (SQLite serialises them; a busy PostgreSQL
#: or a network blip stalls a second or two); shorter leases are taken over from
#: healthy workers. With renewals every lease/4 (the CLI's choice), 5 s survives
#: about 3 s of stalled renewals.
MIN_LEASE_S = 5.0
#: A lease must span this many heartbeats, so one missed renewal costs nothing.
MIN_HEARTBEATS_PER_LEASE = 3


class WorkerOptionsError(ValueError):
    """A worker option (lease, heartbeat, limit) is out of range."""


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs jobs.

    Parameters
    ----------
    lease_s
        Lease length (s); a job whose worker has not renewed it for this long
        is requeued. At least :data:`MIN_LEASE_S` and 3 heartbeats.
    heartbeat_s
        Interval between lease renewals (s); default a quarter of the lease,
        at most 30 s.
    time_limit_s, memory_limit_mb
        Defaults for isolated jobs; a job's own ``time_limit_s`` /
        ``memory_limit_mb`` settings win (and isolate the job).
    isolate
        Run every job in its own process (True), or as each engine declares
        (None, False: the DFT engines are isolated, tblite is not). A job that
        sets a time or memory limit always runs isolated.
    retry
        The automatic retry policy.
    database_retry_s
        How long a transient database error (SQLite locked, a dropped
        PostgreSQL connection) is retried before the worker gives up.
    """

    lease_s: float = 300.0
    heartbeat_s: float | None = None
    time_limit_s: float | None = 24 * 3600.0
    memory_limit_mb: float | None = None
    isolate: bool | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    database_retry_s: float = 600.0

    def __post_init__(self) -> None:
        _positive("lease_s", self.lease_s)
        if self.heartbeat_s is None:
            object.__setattr__(self, "heartbeat_s", min(self.lease_s / 4.0, 30.0))
        for name in ("heartbeat_s", "database_retry_s"):
            _positive(name, getattr(self, name))
        for name in ("time_limit_s", "memory_limit_mb"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.lease_s < MIN_LEASE_S:
            raise WorkerOptionsError(
                f"lease_s={self.lease_s:g}: a lease must last at least {MIN_LEASE_S:g} s, or "
                "healthy workers lose their jobs to others"
            )
        if self.lease_s < MIN_HEARTBEATS_PER_LEASE * self.renewal_s:
            raise WorkerOptionsError(
                f"lease_s={self.lease_s:g} with heartbeat_s={self.renewal_s:g}: a lease must "
                f"span at least {MIN_HEARTBEATS_PER_LEASE} heartbeats"
            )

    @property
    def renewal_s(self) -> float:
        """The heartbeat interval (s), filled in from the lease when not given."""
        return float(self.heartbeat_s or min(self.lease_s / 4.0, 30.0))


def _positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise WorkerOptionsError(f"{name}={value!r}: expected a positive, finite number")
