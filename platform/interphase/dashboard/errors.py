"""Errors the dashboard shows to the user as one line (HTTP 400/403/404/409/413)."""

from __future__ import annotations


class DashboardInputError(ValueError):
    """A query parameter or form field the dashboard cannot use; the message says why."""


class NotFoundError(LookupError):
    """No row with the id in the address."""


class SelectionChangedError(ValueError):
    """The jobs a confirmed write would touch are not the ones the user reviewed."""


class NotRunningError(ValueError):
    """A campaign asked to stop is not running (nothing to stop)."""


class RequestTooLargeError(ValueError):
    """A request body over the dashboard's cap (HTTP 413)."""


class CrossOriginError(PermissionError):
    """A POST sent by a page of another origin (HTTP 403)."""


class UnknownHostError(PermissionError):
    """A request whose ``Host`` is not one this dashboard answers (HTTP 400)."""
