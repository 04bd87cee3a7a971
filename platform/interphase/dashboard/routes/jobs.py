"""Jobs: the filtered table with failures and stuck work, job detail, resubmit and cancel."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from interphase.dashboard.actions import Action, JobsWrite, perform
from interphase.dashboard.database import reading, rehearsing, writing
from interphase.dashboard.errors import DashboardInputError, NotFoundError, SelectionChangedError
from interphase.dashboard.params import RowId, refuse_nul
from interphase.dashboard.queries.failures import failure_groups
from interphase.dashboard.queries.jobs import (
    JobsQuery,
    filter_choices,
    job_detail,
    job_page,
    state_counts,
    stuck_jobs,
)
from interphase.dashboard.routes.common import cursor, require_token
from interphase.dashboard.templating import render

router = APIRouter()

Form = dict[str, list[str]]


async def form_fields(request: Request) -> Form:
    """The url-encoded body htmx sends (every field a list of values).

    The body is at most :data:`~interphase.dashboard.middleware.MAX_BODY_BYTES`
    (the middleware answers 413 before more is read); a field holding NUL is
    refused, as PostgreSQL could not bind it.
    """
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = parse_qs(body, keep_blank_values=True)
    refuse_nul(fields)
    return fields


def _live_context(request: Request) -> dict[str, object]:
    params = request.query_params
    query = JobsQuery.parse(params)
    selection = query.selection()
    before, after = cursor(params.get("before")), cursor(params.get("after"))
    with reading(request) as session:
        return {
            "query": query,
            "page": job_page(session, selection, before=before, after=after),
            "counts": state_counts(session, selection),
            "failures": failure_groups(session, selection),
            "stuck": stuck_jobs(session),
            "cursor_params": {k: v for k, v in params.items() if k in ("before", "after")},
        }


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    context = _live_context(request)
    with reading(request) as session:
        context["choices"] = filter_choices(session)
    return render(request, "jobs/list.html", context)


@router.get("/jobs/live", response_class=HTMLResponse)
def jobs_live(request: Request) -> HTMLResponse:
    """The polled part of the jobs page: counts, table, failures, stuck work."""
    return render(request, "jobs/_live.html", _live_context(request))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page_detail(request: Request, job_id: RowId) -> HTMLResponse:
    return render(request, "jobs/detail.html", _detail_context(request, job_id))


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(request: Request, job_id: RowId) -> HTMLResponse:
    return render(request, "jobs/_detail_live.html", _detail_context(request, job_id))


def _detail_context(request: Request, job_id: int) -> dict[str, object]:
    with reading(request) as session:
        detail = job_detail(session, job_id)
        if detail is None:
            raise NotFoundError(f"no labeling job {job_id}")
        return {"detail": detail}


def _preview(request: Request, action: Action, form: Form) -> HTMLResponse:
    write = JobsWrite.parse(form)
    try:
        with rehearsing(request) as session:
            ids = perform(session, action, write)
    except ValueError as refused:  # the library's one-line reason (as the CLI prints it)
        return render(request, "_message.html", {"kind": "error", "text": str(refused)}, 400)
    return render(
        request,
        "jobs/_confirm.html",
        {"action": action, "write": write, "ids": ids, "changes": write.changes()},
    )


def _perform(request: Request, action: Action, form: Form) -> HTMLResponse:
    write = JobsWrite.parse(form)
    if write.expected_count is None:
        raise DashboardInputError("confirm from the preview: expected_count is missing")
    try:
        with writing(request) as session:
            ids = perform(session, action, write)
    except SelectionChangedError as changed:
        return render(request, "_message.html", {"kind": "error", "text": str(changed)}, 409)
    except ValueError as refused:
        return render(request, "_message.html", {"kind": "error", "text": str(refused)}, 400)
    response = render(
        request, "jobs/_done.html", {"action": action, "ids": ids, "changes": write.changes()}
    )
    response.headers["HX-Trigger"] = "jobs-changed"
    return response


@router.post("/jobs/resubmit/preview", response_class=HTMLResponse)
def resubmit_preview(request: Request, form: Annotated[Form, Depends(form_fields)]) -> HTMLResponse:
    """What a resubmission would do: the count and ids, or the library's refusal."""
    return _preview(request, Action.resubmit, form)


@router.post("/jobs/resubmit", response_class=HTMLResponse, dependencies=[Depends(require_token)])
def resubmit(request: Request, form: Annotated[Form, Depends(form_fields)]) -> HTMLResponse:
    """Resubmit (token required): failed/cancelled jobs back to pending, history kept."""
    return _perform(request, Action.resubmit, form)


@router.post("/jobs/cancel/preview", response_class=HTMLResponse)
def cancel_preview(request: Request, form: Annotated[Form, Depends(form_fields)]) -> HTMLResponse:
    return _preview(request, Action.cancel, form)


@router.post("/jobs/cancel", response_class=HTMLResponse, dependencies=[Depends(require_token)])
def cancel(request: Request, form: Annotated[Form, Depends(form_fields)]) -> HTMLResponse:
    """Cancel pending jobs (token required; needs ``cancel_jobs`` in the library)."""
    return _perform(request, Action.cancel, form)
