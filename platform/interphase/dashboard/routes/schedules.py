"""Schedules: when each campaign runs by itself, its last ticks and their Prefect flow runs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from interphase.dashboard.database import reading
from interphase.dashboard.prefect_ticks import prefect_api, read_ticks
from interphase.dashboard.queries.schedules import schedule_rows, schedule_views
from interphase.dashboard.templating import render
from interphase.settings import get_settings

router = APIRouter()


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request) -> HTMLResponse:
    with reading(request) as session:
        rows = schedule_rows(session)
    api = prefect_api(get_settings().data_dir) if rows else None
    active = [row.spec.campaign for row in rows if row.active]
    prefect = read_ticks(api, active) if api is not None else None
    return render(
        request,
        "schedules/list.html",
        {"schedules": schedule_views(rows, prefect), "api": api, "prefect": prefect},
    )
