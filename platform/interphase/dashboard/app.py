"""The dashboard's FastAPI application: routes, bundled assets, errors, security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from interphase.dashboard.database import DashboardState
from interphase.dashboard.errors import (
    DashboardInputError,
    NotFoundError,
    NotRunningError,
    SelectionChangedError,
)
from interphase.dashboard.routes import campaigns, jobs, models, structures
from interphase.dashboard.routes.common import WriteForbiddenError
from interphase.dashboard.security import TOKEN_HEADER
from interphase.dashboard.templating import is_fragment_request, render
from interphase.db.session import database_url, redacted_url, session_factory

STATIC_DIR = Path(__file__).parent / "static"

#: Scripts only from this server, no inline script, no eval: a stored string that
#: slipped past escaping still could not run.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


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
        Host header values to accept (e.g. loopback names, against DNS rebinding);
        None accepts any.
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
    for module in (campaigns, jobs, structures, models):
        app.include_router(module.router)
    _add_error_pages(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.method != "GET":
            response.headers["Cache-Control"] = "no-store"
        return response

    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
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
            if is_fragment_request(request):
                return render(request, "_message.html", {"kind": "error", "text": message}, status)
            context = {"status": status, "title": title, "text": message}
            return render(request, "error.html", context, status)

        return handler

    app.add_exception_handler(DashboardInputError, page(400, "cannot show that"))
    app.add_exception_handler(NotFoundError, page(404, "not found"))
    app.add_exception_handler(SelectionChangedError, page(409, "selection changed"))
    app.add_exception_handler(NotRunningError, page(409, "not running"))
    forbidden = page(403, f"this needs the dashboard token ({TOKEN_HEADER})")
    app.add_exception_handler(WriteForbiddenError, forbidden)
