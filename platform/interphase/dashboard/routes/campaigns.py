"""Campaigns: the list (iterations, last activity); the rich views come with the campaign work."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from interphase.dashboard.database import reading
from interphase.dashboard.queries.campaigns import campaign_rows, overview
from interphase.dashboard.templating import is_fragment_request, render

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
