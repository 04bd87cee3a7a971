"""Models: training runs with settings, dataset per head, metrics, curves and artifacts."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from interphase.dashboard.campaign_charts import parity_figures
from interphase.dashboard.database import reading
from interphase.dashboard.errors import NotFoundError
from interphase.dashboard.params import RowId
from interphase.dashboard.queries.models import artifact, run_detail, training_runs
from interphase.dashboard.queries.parity import run_parity
from interphase.dashboard.templating import is_fragment_request, render
from interphase.dashboard.training_curves import training_curves

router = APIRouter()


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    with reading(request) as session:
        runs = training_runs(session)
    template = "models/_runs.html" if is_fragment_request(request) else "models/list.html"
    return render(request, template, {"runs": runs})


def _detail_context(request: Request, run_id: int) -> dict[str, object]:
    with reading(request) as session:
        detail = run_detail(session, run_id)
        if detail is None:
            raise NotFoundError(f"no training run {run_id}")
        parity = run_parity(session, detail.run.metrics, list(detail.run.heads or []))
        return {
            "detail": detail,
            "curves": training_curves(detail.curves, detail.heads),
            "parity": parity,
            "parity_charts": parity_figures(parity),
        }


@router.get("/models/{run_id}", response_class=HTMLResponse)
def model_page(request: Request, run_id: RowId) -> HTMLResponse:
    return render(request, "models/detail.html", _detail_context(request, run_id))


@router.get("/models/{run_id}/live", response_class=HTMLResponse)
def model_live(request: Request, run_id: RowId) -> HTMLResponse:
    """The polled part of a run's page: progress and training curves."""
    return render(request, "models/_detail_live.html", _detail_context(request, run_id))


@router.get("/models/{run_id}/artifacts/{artifact_id}")
def model_artifact(request: Request, run_id: RowId, artifact_id: RowId) -> FileResponse:
    """The model file, as recorded (only paths stored in the database are served)."""
    with reading(request) as session:
        found = artifact(session, run_id, artifact_id)
        if found is None:
            raise NotFoundError(f"training run {run_id} has no artifact {artifact_id}")
        path = Path(found.path)
    if not path.is_file():
        raise NotFoundError(f"the artifact file {path} is not on this machine")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)
