"""Dask-side helpers for the executor tests: the fake engines on every Dask worker."""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin


class FakeEngines(WorkerPlugin):
    """Registers the test engines (:mod:`tests.labeling.fake_engines`) on each worker.

    A worker plugin also reaches workers that start later, such as the one a
    nanny starts in place of a killed worker.
    """

    name = "interphase-test-engines"

    def setup(self, worker: Any) -> None:
        from tests.labeling import fake_engines

        fake_engines.register()


def dask_worker_pids(client: Any) -> set[int]:
    """Pids of the cluster's Dask worker processes."""
    import os

    return set(client.run(os.getpid).values())
