"""Automatic retry policy per error class.

After a failed attempt the queue asks the policy whether to try again and with
which settings: SCF non-convergence retries with the engine's own rescue steps
(damping, level shift, more iterations); a timeout retries with a longer time
limit and an out-of-memory death with a larger memory limit (each by a growth
factor, the memory capped at the machine's RAM); crashes and dead workers retry
a limited number of times; invalid input and a missing engine never retry,
since running them again cannot help.

Attempts are counted from the job's retry budget start: a resubmit starts a
fresh budget, and an attempt stopped by SIGINT/SIGTERM (``Interrupted``) is not
counted at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from interphase.db.models import LabelingJob
from interphase.labeling.engines import UnknownEngineError, get_engine
from interphase.labeling.engines.contract import LabelingEngine
from interphase.labeling.isolation.run import Limits
from interphase.labeling.job_settings import JobSettingsError, validate_job_settings

#: Error class of an attempt whose worker stopped renewing its lease.
LEASE_EXPIRED = "LeaseExpired"
#: Error class of an attempt stopped because its worker got SIGINT or SIGTERM.
INTERRUPTED = "Interrupted"

#: Attempts allowed in total (first try included) per retry budget, by error class.
DEFAULT_MAX_ATTEMPTS: dict[str, int] = {
    "SCFNotConverged": 3,
    "Timeout": 2,
    "EngineCrashed": 2,
    "OutOfMemory": 3,
    LEASE_EXPIRED: 3,
    "InvalidInput": 1,
    "EngineUnavailable": 1,
}


def physical_memory_mb() -> float | None:
    """RAM of this machine (MB), or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1024.0**2
    except (ValueError, OSError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts each error class gets, and how settings change between them.

    Parameters
    ----------
    max_attempts
        Total attempts (first one included) per error class; classes not listed
        get ``default_max_attempts``.
    timeout_growth
        Factor applied to the time limit when a job is retried after a timeout.
    memory_growth
        Factor applied to the memory limit when a job is retried after running
        out of memory.
    max_memory_limit_mb
        Largest memory limit a retry asks for; None: this machine's RAM. A job
        that ran out of memory at the cap stays failed.
    """

    max_attempts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_ATTEMPTS))
    default_max_attempts: int = 1
    timeout_growth: float = 2.0
    memory_growth: float = 2.0
    max_memory_limit_mb: float | None = None

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """A policy that fails every job on its first error."""
        return cls(max_attempts={}, default_max_attempts=1)

    def next_settings(
        self,
        error_class: str,
        attempt: int,
        settings: dict[str, Any],
        engine: LabelingEngine | None,
        limits: Limits | None = None,
    ) -> dict[str, Any] | None:
        """Settings for the next attempt, or None when the job should stay failed.

        Parameters
        ----------
        error_class
            The class of the failure just recorded.
        attempt
            Attempts counted in the job's retry budget so far (1 after the first).
        settings
            The settings the failed attempt ran with.
        engine
            The job's engine (its ``scf_rescue_steps`` drive SCF retries), or
            None when it is unknown.
        limits
            The limits the failed attempt ran under (a worker default when the
            job set none); the base of the longer time or larger memory limit.
        """
        if attempt >= self.max_attempts.get(error_class, self.default_max_attempts):
            return None
        new = dict(settings)
        if error_class == "SCFNotConverged":
            steps = engine.scf_rescue_steps if engine is not None else ()
            # One rescue step per retry; the n-th retry uses the n-th step.
            index = min(attempt - 1, len(steps) - 1)
            if index < 0:
                return None
            new.update(steps[index])
        elif error_class == "Timeout":
            time_limit = new.get("time_limit_s", limits.time_limit_s if limits else None)
            if time_limit is not None:
                new["time_limit_s"] = float(time_limit) * self.timeout_growth
        elif error_class == "OutOfMemory":
            return self._more_memory(new, limits)
        return new

    def settings_after(
        self,
        error_class: str,
        job: LabelingJob,
        engine_name: str,
        limits: Limits | None = None,
    ) -> dict[str, Any] | None:
        """Validated settings of ``job``'s next attempt after a failure; None: it stays failed.

        Counts the attempts of the job's retry budget, asks :meth:`next_settings`
        and refuses settings the next claim would refuse (such as a time limit
        grown past the largest float). An engine unknown to this worker is not
        checked here: the claiming worker checks.
        """
        try:
            engine: LabelingEngine | None = get_engine(engine_name)
        except UnknownEngineError:
            engine = None
        budget_used = job.attempt - job.budget_start_attempt
        settings = self.next_settings(error_class, budget_used, dict(job.settings), engine, limits)
        if settings is None or engine is None:
            return settings
        try:
            return validate_job_settings(engine_name, settings)
        except JobSettingsError:
            return None

    def _more_memory(
        self, settings: dict[str, Any], limits: Limits | None
    ) -> dict[str, Any] | None:
        """``settings`` with a grown memory limit; None without a limit or at the cap."""
        current = settings.get("memory_limit_mb", limits.memory_limit_mb if limits else None)
        if current is None:
            return None  # the machine itself ran out: more attempts cannot help
        cap = self.max_memory_limit_mb or physical_memory_mb()
        grown = float(current) * self.memory_growth
        if cap is not None:
            if float(current) >= cap:
                return None
            grown = min(grown, cap)
        return {**settings, "memory_limit_mb": grown}
