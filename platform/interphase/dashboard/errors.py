"""Errors the dashboard shows to the user as one line (HTTP 400/404/409)."""

from __future__ import annotations


class DashboardInputError(ValueError):
    """A query parameter or form field the dashboard cannot use; the message says why."""


class NotFoundError(LookupError):
    """No row with the id in the address."""


class SelectionChangedError(ValueError):
    """The jobs a confirmed write would touch are not the ones the user reviewed."""


class NotRunningError(ValueError):
    """A campaign asked to stop is not running (nothing to stop)."""
