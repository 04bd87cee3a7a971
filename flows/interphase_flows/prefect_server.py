"""The local Prefect server's app: Prefect's own, made to schedule runs under SQLAlchemy 2.1.

Prefect 3.8.8's scheduler bulk-inserts flow runs from dicts that carry a
``state`` key, which names a hybrid property of its ``FlowRun`` model.
SQLAlchemy 2.0 ignored such keys; 2.1 (pinned by interphase) refuses them
("Can't evaluate bulk DML statement; please supply a bulk_dml decorated
function"), so no schedule ever produces a run. Prefect inserts those states
itself right after, so telling SQLAlchemy to ignore the key, as 2.0 did, is
the whole fix. Used as the uvicorn factory by
:func:`interphase_flows.runtime.local_prefect_server`.
"""

from __future__ import annotations

from typing import Any


def _ignore_in_bulk_insert(_cls: Any, _mapping: Any, _value: Any) -> None:
    """The run's state rows are inserted separately by Prefect."""


def allow_scheduled_run_inserts() -> bool:
    """Give ``FlowRun.state`` a no-op bulk-insert handler where SQLAlchemy needs one."""
    from prefect.server.database.orm_models import FlowRun

    hybrid: Any = FlowRun.__dict__.get("state")
    if hybrid is None or getattr(hybrid, "bulk_dml_setter", "absent") is not None:
        return False  # SQLAlchemy 2.0 (no such hook) or already handled
    hybrid.inplace.bulk_dml(_ignore_in_bulk_insert)
    return True


def create_app() -> Any:
    """Prefect's server app (``uvicorn --factory``), after the fix above."""
    from prefect.server.api.server import create_app as prefect_app

    allow_scheduled_run_inserts()
    return prefect_app()
