"""Call a session-taking library function in its own transaction (as a CLI command does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from interphase.db.session import transaction


def within(url: str | None, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(session, *args, **kwargs)`` in one transaction on ``url``; its result."""
    with transaction(url) as session:
        return function(session, *args, **kwargs)
