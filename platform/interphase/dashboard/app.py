"""The dashboard's FastAPI application: routes, bundled assets, errors, security headers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from interphase.dashboard.database import DashboardState
from interphase.dashboard.errors import (
    DashboardInputError,
    NotFoundError,
    NotRunningError,
    RequestTooLargeError,
    SelectionChangedError,
)
from interphase.dashboard.middleware import (
    SECURITY_HEADERS,
    BodyLimit,
    HostAllowList,
    SameOrigin,
    SecurityHeaders,
)
from interphase.dashboard.routes import (
    campaigns,
    jobs,
    model_compare,
    models,
    schedules,
    structures,
)
from interphase.dashboard.routes.common import WriteForbiddenError
from interphase.dashboard.security import TOKEN_HEADER
from interphase.dashboard.templating import error_page
from interphase.db.session import database_url, redacted_url, session_factory

STATIC_DIR = Path(__file__).parent / "static"


def plotly_js_path() -> Path:
    """``plotly.min.js`` as the plotly Python package ships it."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def create_app(
    url: str | None = None, *, token: str, allowed_hosts: Sequence[str] | None = None
) -> FastAPI:
    """The dashboard over the database at ``url`` (default: the configured one).

    Parameters
    ----------
    url
        SQLAlchemy URL; the schema must be current (``interphase db upgrade``).
    token
        The write token every POST must carry in the ``X-Interphase-Token`` header.
    allowed_hosts
        Host names to answer, any port (e.g. :func:`~interphase.dashboard.security.
        loopback_host_names`, against DNS rebinding); None answers any.
    """
    resolved = database_url(url)
    app = FastAPI(title="interphase dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = DashboardState(
        sessions=session_factory(resolved),
        token=token,
        database=redacted_url(resolved),
        url=resolved,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_api_route("/vendor/plotly.min.js", _plotly, methods=["GET"], include_in_schema=False)
    # model_compare before models: /models/compare is not /models/{run_id}.
    for module in (campaigns, jobs, structures, model_compare, models, schedules):
        app.include_router(module.router)
    _add_error_pages(app)
    # Each add wraps the ones before: a request meets them in the reverse order.
    app.add_middleware(BodyLimit)
    app.add_middleware(SameOrigin)
    if allowed_hosts is not None:
        app.add_middleware(HostAllowList, names=allowed_hosts)
    app.add_middleware(SecurityHeaders)
    return app


def _plotly() -> FileResponse:
    return FileResponse(
        plotly_js_path(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _add_error_pages(app: FastAPI) -> None:
    """One-line errors: a fragment for htmx, a page otherwise."""

    def page(status: int, title: str) -> Callable[[Request, Exception], Response]:
        def handler(request: Request, error: Exception) -> Response:
            message = str(error.args[0]) if error.args else title
            return error_page(request, status, title, message)

        return handler

    def invalid(request: Request, error: Exception) -> Response:
        """A path id that is not a row id is a page that cannot exist (404)."""
        problems = error.errors() if isinstance(error, RequestValidationError) else []
        in_path = any(problem.get("loc", ("",))[0] == "path" for problem in problems)
        reasons = "; ".join(str(problem.get("msg", "")) for problem in problems)
        if in_path:
            return error_page(request, 404, "not found", f"no such page: {reasons}")
        return error_page(request, 400, "cannot show that", reasons or "invalid request")

    def server_error(request: Request, error: Exception) -> Response:
        """The 500 page, with the security headers itself: it is answered outside all
        middleware (the traceback still goes to the log)."""
        text = "internal error: the dashboard's log has the details"
        response = error_page(request, 500, "internal error", text)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, server_error)
    app.add_exception_handler(RequestTooLargeError, page(413, "request too large"))

    app.add_exception_handler(DashboardInputError, page(400, "cannot show that"))
    app.add_exception_handler(NotFoundError, page(404, "not found"))
    app.add_exception_handler(SelectionChangedError, page(409, "selection changed"))
    app.add_exception_handler(NotRunningError, page(409, "not running"))
    forbidden = page(403, f"this needs the dashboard token ({TOKEN_HEADER})")
    app.add_exception_handler(WriteForbiddenError, forbidden)
