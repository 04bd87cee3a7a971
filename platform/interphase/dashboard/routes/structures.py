"""Structures: the filtered list, one structure's lineage and 3D view, extxyz download."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from interphase.dashboard.database import reading
from interphase.dashboard.errors import NotFoundError
from interphase.dashboard.params import RowId
from interphase.dashboard.queries.jobs import filter_choices
from interphase.dashboard.queries.structures import (
    StructuresQuery,
    generators,
    structure_detail,
    structure_page,
)
from interphase.dashboard.routes.common import cursor
from interphase.dashboard.templating import render
from interphase.db.models import Label, Structure
from interphase.db.structures import record_from_row
from interphase.io.extxyz_write import write_extxyz

router = APIRouter()


@router.get("/structures", response_class=HTMLResponse)
def structures_page(request: Request) -> HTMLResponse:
    params = request.query_params
    query = StructuresQuery.parse(params)
    with reading(request) as session:
        page = structure_page(
            session, query, before=cursor(params.get("before")), after=cursor(params.get("after"))
        )
        context = {
            "query": query,
            "page": page,
            "generators": generators(session),
            "campaigns": filter_choices(session).campaigns,
        }
    return render(request, "structures/list.html", context)


@router.get("/structures/{structure_id}", response_class=HTMLResponse)
def structure_page_detail(request: Request, structure_id: RowId) -> HTMLResponse:
    with reading(request) as session:
        detail = structure_detail(session, structure_id)
        if detail is None:
            raise NotFoundError(f"no structure {structure_id}")
        return render(request, "structures/detail.html", {"detail": detail})


@router.get("/structures/{structure_id}/extxyz")
def structure_extxyz(request: Request, structure_id: RowId) -> Response:
    """The structure and its labels as one extxyz frame (``interphase.io`` writer)."""
    with reading(request) as session:
        structure = session.get(Structure, structure_id)
        if structure is None:
            raise NotFoundError(f"no structure {structure_id}")
        labels = session.query(Label).filter(Label.structure_id == structure_id).all()
        record = record_from_row(structure, labels)
    text = io.StringIO()
    write_extxyz([record], text)
    return Response(
        text.getvalue(),
        media_type="chemical/x-extxyz",
        headers={"Content-Disposition": f'attachment; filename="structure-{structure_id}.extxyz"'},
    )
