"""Automatic retry policy per error class.

After a failed attempt the queue asks the policy whether to try again and with
which settings: SCF non-convergence retries with the engine's own rescue steps
(damping, level shift, more iterations); crashes, timeouts and dead workers
retry a limited number of times; invalid input and a missing engine never
retry, since running them again cannot help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interphase.labeling.engine import LabelingEngine

#: Error class of an attempt whose worker stopped renewing its lease.
LEASE_EXPIRED = "LeaseExpired"

#: Attempts allowed in total (first try included), by error class.
DEFAULT_MAX_ATTEMPTS: dict[str, int] = {
    "SCFNotConverged": 3,
    "Timeout": 2,
    "EngineCrashed": 2,
    LEASE_EXPIRED: 3,
    "InvalidInput": 1,
    "EngineUnavailable": 1,
}


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts each error class gets, and how settings change between them.

    Parameters
    ----------
    max_attempts
        Total attempts (first one included) per error class; classes not listed
        get ``default_max_attempts``.
    timeout_growth
        Factor applied to a job's ``time_limit_s`` when it is retried after a
        timeout.
    """

    max_attempts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_ATTEMPTS))
    default_max_attempts: int = 1
    timeout_growth: float = 2.0

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
    ) -> dict[str, Any] | None:
        """Settings for the next attempt, or None when the job should stay failed.

        Parameters
        ----------
        error_class
            The class of the failure just recorded.
        attempt
            How many attempts the job has had so far (1 after the first).
        settings
            The settings the failed attempt ran with.
        engine
            The job's engine (its ``scf_rescue_steps`` drive SCF retries), or
            None when it is unknown.
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
        elif error_class == "Timeout" and "time_limit_s" in new:
            new["time_limit_s"] = float(new["time_limit_s"]) * self.timeout_growth
        return new
