"""Pieces every route module uses: the write-token check and cursor parsing."""

from __future__ import annotations

from fastapi import Request

from interphase.dashboard.database import state_of
from interphase.dashboard.params import optional_whole_number
from interphase.dashboard.security import TOKEN_HEADER, token_matches


class WriteForbiddenError(PermissionError):
    """A write without the dashboard token, or with a wrong one (HTTP 403)."""


def require_token(request: Request) -> None:
    """Refuse a write unless its :data:`TOKEN_HEADER` header holds the dashboard token.

    Only the header counts (never a cookie or a form field), so a form posted
    from another site can never carry it.
    """
    if not token_matches(request.headers.get(TOKEN_HEADER), state_of(request).token):
        where = (
            "enter it in the box at the top right (`interphase dashboard` printed it when it "
            "made it, in the data directory's dashboard-token, or INTERPHASE_DASHBOARD_TOKEN)"
        )
        if TOKEN_HEADER in request.headers:
            raise WriteForbiddenError(f"the dashboard token is wrong: {where}")
        raise WriteForbiddenError(f"this change needs the dashboard token: {where}")


def cursor(value: str | None) -> int | None:
    """A keyset cursor (a row id) from the address, or None."""
    return optional_whole_number(value, "page cursor")
