"""Campaigns: the list, a campaign's page, an iteration's page, and stopping a campaign."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from interphase.campaign.run import request_stop
from interphase.dashboard.campaign_charts import (
    campaign_figures,
    parity_figures,
    uncertainty_histograms,
)
from interphase.dashboard.database import reading, state_of
from interphase.dashboard.errors import NotFoundError, NotRunningError
from interphase.dashboard.params import RowId
from interphase.dashboard.queries.campaign_view import (
    CampaignHeader,
    campaign_header,
    campaign_view,
)
from interphase.dashboard.queries.campaigns import campaign_rows, overview
from interphase.dashboard.queries.iteration_view import IterationView, iteration_view
from interphase.dashboard.queries.parity import run_parity
from interphase.dashboard.routes.common import require_token
from interphase.dashboard.templating import is_fragment_request, render
from interphase.dashboard.training_curves import training_curves
from interphase.db.models import Campaign

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page(request: Request) -> HTMLResponse:
    fragment = is_fragment_request(request)
    with reading(request) as session:
        context: dict[str, object] = {"campaigns": campaign_rows(session)}
        if not fragment:
            context["overview"] = overview(session)
    template = "campaigns/_rows.html" if fragment else "campaigns/list.html"
    return render(request, template, context)


def _campaign_context(request: Request, campaign_id: int) -> dict[str, object]:
    with reading(request) as session:
        view = campaign_view(session, campaign_id)
        if view is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return {"view": view, "header": view.header, "charts": campaign_figures(view)}


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: RowId) -> HTMLResponse:
    return render(request, "campaigns/detail.html", _campaign_context(request, campaign_id))


@router.get("/campaigns/{campaign_id}/live", response_class=HTMLResponse)
def campaign_live(request: Request, campaign_id: RowId) -> HTMLResponse:
    """The polled part of a campaign's page (while it runs)."""
    return render(request, "campaigns/_detail_live.html", _campaign_context(request, campaign_id))


def _iteration_context(
    request: Request, campaign_id: int, index: int, *, with_charts: bool = True
) -> dict[str, object]:
    with reading(request) as session:
        view = iteration_view(session, campaign_id, index, with_charts=with_charts)
        if view is None:
            raise NotFoundError(f"campaign {campaign_id} has no iteration {index}")
        charts = iteration_figures(session, view) if with_charts else {}
        return {"view": view, "header": view.header, "charts": charts}


def iteration_figures(session: Session, view: IterationView) -> dict[str, object]:
    """Uncertainty of both stages per level, and training curves and parity per run."""
    names = {view.id: f"iteration {view.index}"}
    thresholds = view.header.thresholds_mev_per_atom
    training = []
    for detail in view.training:
        parity = run_parity(session, detail.run.metrics, list(detail.run.heads or []))
        training.append(
            {
                "detail": detail,
                "curves": training_curves(detail.curves, detail.heads),
                "parity": parity,
                "parity_charts": parity_figures(parity),
            }
        )
    return {
        "select": uncertainty_histograms(view.scores, thresholds, names, "select"),
        "pool": uncertainty_histograms(view.scores, thresholds, names, "pool"),
        "training": training,
    }


@router.get("/campaigns/{campaign_id}/iterations/{index}", response_class=HTMLResponse)
def iteration_page(request: Request, campaign_id: RowId, index: RowId) -> HTMLResponse:
    context = _iteration_context(request, campaign_id, index)
    return render(request, "campaigns/iteration.html", context)


@router.get("/campaigns/{campaign_id}/iterations/{index}/live", response_class=HTMLResponse)
def iteration_live(request: Request, campaign_id: RowId, index: RowId) -> HTMLResponse:
    """The polled part of an iteration's page: the campaign's state and the steps."""
    context = _iteration_context(request, campaign_id, index, with_charts=False)
    return render(request, "campaigns/_iteration_live.html", context)


def _header(request: Request, campaign_id: int) -> CampaignHeader:
    with reading(request) as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return campaign_header(session, campaign)


@router.get("/campaigns/{campaign_id}/stop", response_class=HTMLResponse)
def stop_confirm(request: Request, campaign_id: RowId) -> HTMLResponse:
    """What stopping would do (no change yet): the confirm box."""
    header = _header(request, campaign_id)
    if not header.is_running:
        raise NotRunningError(
            f"campaign {header.name!r} is not running ({header.state}); nothing to stop"
        )
    return render(request, "campaigns/_stop_confirm.html", {"header": header})


@router.post(
    "/campaigns/{campaign_id}/stop",
    response_class=HTMLResponse,
    dependencies=[Depends(require_token)],
)
def stop(request: Request, campaign_id: RowId) -> HTMLResponse:
    """Ask the campaign's runner to stop after its current step (token required)."""
    header = _header(request, campaign_id)
    state = request_stop(state_of(request).url, header.name)
    if state != "running":
        raise NotRunningError(f"campaign {header.name!r} is not running ({state}); nothing to stop")
    response = render(
        request, "campaigns/_stop_done.html", {"header": _header(request, campaign_id)}
    )
    response.headers["HX-Trigger"] = "campaign-changed"
    return response
