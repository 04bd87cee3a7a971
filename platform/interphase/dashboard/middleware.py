"""Checks every request passes before a route runs, and the headers every answer carries.

From the outside in:

- :class:`SecurityHeaders`: the Content-Security-Policy and its companions on
  every response, error pages included (the 500 page gets them from its handler,
  as Starlette answers it outside all middleware).
- :class:`HostAllowList`: on a loopback address, only requests whose ``Host``
  names this machine (against DNS rebinding).
- :class:`SameOrigin`: a request other than GET/HEAD/OPTIONS that a page of
  another origin sent (its ``Origin``, else its ``Referer``, names another host)
  is refused: previews as well as writes.
- :class:`BodyLimit`: a body over :data:`MAX_BODY_BYTES` is refused (413), by
  its ``Content-Length`` before any of it is read, or, sent without one, as
  soon as what was read passes the cap.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interphase.dashboard.errors import RequestTooLargeError
from interphase.dashboard.security import host_name
from interphase.dashboard.templating import error_page

#: The largest request body read (bytes); a form of thousands of job ids is far smaller.
MAX_BODY_BYTES = 1 << 20
#: Methods that change nothing, so any page may send them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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
_DIGITS = re.compile(r"[0-9]+")


def too_large_text(limit: int = MAX_BODY_BYTES) -> str:
    return f"the request body is over {limit:,} bytes; send fewer job ids or settings at once"


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (and ``no-store`` to non-GET ones)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_get = scope["method"] == "GET"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not is_get:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostAllowList:
    """Answers only requests whose ``Host`` is one of ``names`` (any port); 400 otherwise.

    Unlike Starlette's ``TrustedHostMiddleware`` it reads bracketed IPv6 hosts
    (``[::1]:8050``), so the guard holds on every loopback address.
    """

    def __init__(self, app: ASGIApp, names: Collection[str]) -> None:
        self.app = app
        self.names = frozenset(host_name(name) for name in names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if host_name(request.headers.get("host", "")) not in self.names:
                names = ", ".join(sorted(self.names))
                text = f"this dashboard answers only requests addressed to {names}"
                await error_page(request, 400, "unknown host", text)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_same_origin(headers: Headers) -> bool:
    """Whether a request's ``Origin`` (else ``Referer``) names the host it was sent to.

    A request with neither header was not sent by a web page (curl, a script)
    and passes; ``Origin: null`` (a sandboxed or no-referrer page) does not.
    The host may be ``Host`` or, behind a proxy, ``X-Forwarded-Host``: a page
    cannot set either on a cross-site request.
    """
    hosts = {headers.get(name, "").strip().lower() for name in ("host", "x-forwarded-host")}
    hosts.discard("")
    for name in ("origin", "referer"):
        value = headers.get(name)
        if value is not None:
            parts = urlsplit(value.strip())
            return parts.scheme in ("http", "https") and parts.netloc.lower() in hosts
    return True


class SameOrigin:
    """Refuses (403) a request other than GET/HEAD/OPTIONS that another origin's page sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            request = Request(scope)
            if not is_same_origin(request.headers):
                text = "refused: this request came from a page of another site"
                await error_page(request, 403, "cross-origin request", text)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses (413) a request body over ``limit`` bytes without reading past the cap."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        declared = request.headers.get("content-length", "").strip()
        if _DIGITS.fullmatch(declared) and (len(declared) > 18 or int(declared) > self.limit):
            response = error_page(request, 413, "request too large", too_large_text(self.limit))
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # sent without (or beyond) a Content-Length
                    raise RequestTooLargeError(too_large_text(self.limit))
            return message

        await self.app(scope, limited_receive, send)
