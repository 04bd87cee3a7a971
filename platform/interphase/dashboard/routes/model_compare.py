"""Models compared: per-head test and validation errors of several training runs side by side.

Registered before :mod:`interphase.dashboard.routes.models`, whose
``/models/{run_id}`` would otherwise take ``/models/compare``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from interphase.dashboard.database import reading
from interphase.dashboard.errors import DashboardInputError, NotFoundError
from interphase.dashboard.params import whole_number
from interphase.dashboard.queries.model_compare import (
    MAX_COMPARED_RUNS,
    compared_runs,
    comparison,
)
from interphase.dashboard.templating import render

router = APIRouter()


def compared_run_ids(values: list[str]) -> list[int]:
    """The ``run`` values of the address as distinct run ids, in their order.

    Raises
    ------
    DashboardInputError
        For no run, a value that is not a row id, or more than :data:`MAX_COMPARED_RUNS`.
    """
    ids = list(dict.fromkeys(whole_number(value.strip(), "run") for value in values))
    if not ids:
        raise DashboardInputError(
            "no run to compare: tick runs on the models page, or give them in the address "
            "(/models/compare?run=1&run=3)"
        )
    if len(ids) > MAX_COMPARED_RUNS:
        raise DashboardInputError(
            f"at most {MAX_COMPARED_RUNS} runs can be compared at once; got {len(ids)}"
        )
    return ids


@router.get("/models/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    run_ids = compared_run_ids(request.query_params.getlist("run"))
    with reading(request) as session:
        runs, missing = compared_runs(session, run_ids)
    if missing:
        shown = ", ".join(str(run_id) for run_id in missing)
        raise NotFoundError(f"no training run {shown}")
    return render(request, "models/compare.html", {"comparison": comparison(runs)})
