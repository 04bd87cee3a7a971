"""Atomization energies from per-level references, and the retry policy's decisions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from interphase.db.models import Label
from interphase.db.session import transaction
from interphase.labeling.engines import get_engine
from interphase.labeling.levels import atomization_energy
from interphase.labeling.queue.retry import LEASE_EXPIRED, RetryPolicy
from interphase.labeling.queue.run import run_pending_jobs
from tests.labeling.job_helpers import queue_jobs, waters


def test_atomization_energy_needs_every_element() -> None:
    refs = {"O": -3.0, "H": -0.4}
    assert atomization_energy(-5.0, ["O", "H", "H"], refs) == pytest.approx(-1.2)
    assert atomization_energy(-5.0, ["O", "H", "Li"], refs) is None
    assert atomization_energy(-5.0, ["O"], {}) is None


def test_queue_stores_atomization_energy_from_the_level(db_url: str) -> None:
    from interphase.db.models import LevelOfTheory

    queue_jobs(db_url, waters(1), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    with transaction(db_url) as session:
        level = session.scalars(select(LevelOfTheory)).one()
        level.reference_energies_hartree = {"O": -3.9, "H": -0.39}
    run_pending_jobs(db_url)
    with transaction(db_url) as session:
        label = session.scalars(select(Label)).one()
        assert label.total_energy_hartree is not None
        assert label.atomization_energy_hartree == pytest.approx(
            label.total_energy_hartree - (-3.9 - 2 * 0.39)
        )


def test_retry_policy_per_error_class() -> None:
    policy = RetryPolicy()
    pyscf = get_engine("pyscf")
    first = policy.next_settings("SCFNotConverged", 1, {"max_iterations": 1}, pyscf)
    assert first == {"max_iterations": 200, "damping": 0.5}
    second = policy.next_settings("SCFNotConverged", 2, first or {}, pyscf)
    assert second is not None and second["level_shift_hartree"] == 0.3
    assert policy.next_settings("SCFNotConverged", 3, second, pyscf) is None
    assert policy.next_settings("InvalidInput", 1, {}, pyscf) is None
    assert policy.next_settings("EngineUnavailable", 1, {}, pyscf) is None
    assert policy.next_settings("Timeout", 1, {"time_limit_s": 10}, pyscf) == {"time_limit_s": 20.0}
    assert policy.next_settings("Timeout", 2, {"time_limit_s": 20}, pyscf) is None
    assert policy.next_settings(LEASE_EXPIRED, 2, {}, pyscf) == {}
    assert RetryPolicy.no_retries().next_settings("EngineCrashed", 1, {}, pyscf) is None
