"""The Dask cluster an :class:`~interphase.execution.ExecutorSettings` asks for.

A LocalCluster of one-thread worker processes, or Dask workers started as SLURM
or PBS jobs by dask-jobqueue. Two settings differ from Dask's defaults on
purpose: worker processes are not daemonic (a DFT job runs in a child process
of its worker, and daemonic processes may not have children), and workers know
the Prefect API of the flow that uses them (``PREFECT_API_URL``), so they report
to it instead of each starting a temporary Prefect server of their own.
"""

from __future__ import annotations

import logging
import shlex
from typing import Any

import dask

from interphase.execution import ExecutorSettings

#: Dask resource a GP fit (or training) asks for when ``gpu_resources`` is set.
GPU_RESOURCE = "GPU"


def prefect_api_url() -> str:
    """The Prefect API the flows of this process use, starting the local one if none is set.

    Without ``PREFECT_API_URL`` Prefect runs flows against a temporary server of
    this process (Prefect's ephemeral mode); it is started here so its address
    can be handed to the workers.
    """
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if configured:
        return str(configured)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def worker_environment(api_url: str) -> dict[str, str]:
    """Environment every Dask worker needs (Prefect's API; non-daemonic worker processes)."""
    return {"PREFECT_API_URL": api_url, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}


def start_cluster(settings: ExecutorSettings, api_url: str) -> Any:
    """Start the cluster ``settings.cluster`` names (``local`` when unset); the caller closes it."""
    # Read by the nannies of this process (LocalCluster) each time they start a worker.
    dask.config.set({"distributed.worker.daemon": False})
    if settings.cluster in (None, "local"):
        return _local_cluster(settings, api_url)
    cluster = _jobqueue_cluster(settings, api_url)
    if settings.adapt_maximum is not None:
        cluster.adapt(minimum=settings.adapt_minimum or 0, maximum=settings.adapt_maximum)
    else:
        cluster.scale(settings.workers)
    return cluster


def _local_cluster(settings: ExecutorSettings, api_url: str) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=settings.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.WARNING,
        env=worker_environment(api_url),
        resources={GPU_RESOURCE: 1} if settings.gpu_resources else None,
    )


def jobqueue_arguments(settings: ExecutorSettings, api_url: str) -> dict[str, Any]:
    """Keyword arguments of dask-jobqueue's SLURMCluster / PBSCluster for these settings."""
    exports = [
        f"export {key}={shlex.quote(value)}" for key, value in worker_environment(api_url).items()
    ]
    arguments: dict[str, Any] = {
        "cores": settings.cores,
        "processes": settings.processes,
        "memory": settings.memory,
        "walltime": settings.walltime,
        "queue": settings.queue,
        "account": settings.account,
        "job_extra_directives": list(settings.job_extra_directives),
        "job_script_prologue": [*exports, *settings.job_script_prologue],
        "silence_logs": "warning",
        "scheduler_options": {"dashboard_address": None},
    }
    if settings.gpu_resources:
        arguments["worker_extra_args"] = ["--resources", f"{GPU_RESOURCE}=1"]
    return arguments


def _jobqueue_cluster(settings: ExecutorSettings, api_url: str) -> Any:
    from dask_jobqueue import PBSCluster, SLURMCluster

    cluster_class = SLURMCluster if settings.cluster == "slurm" else PBSCluster
    return cluster_class(**jobqueue_arguments(settings, api_url))
