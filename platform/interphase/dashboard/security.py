"""The dashboard's write token and the rules around it.

Reads need no token. Every write (resubmit, cancel, and later: stop a campaign)
must carry the token in the :data:`TOKEN_HEADER` request header; a browser
never sends a custom header with a cross-site form, so such a form cannot post.
The token is ``INTERPHASE_DASHBOARD_TOKEN``, or one made on first start and kept
in the data directory (mode 0600). Tokens are compared in constant time.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

#: The request header that carries the token.
TOKEN_HEADER = "X-Interphase-Token"
#: Environment variable holding a configured token.
TOKEN_ENV = "INTERPHASE_DASHBOARD_TOKEN"
#: File name of the generated token inside the data directory.
TOKEN_FILE = "dashboard-token"
#: Shortest token accepted from the environment (characters).
MIN_TOKEN_LENGTH = 16


class TokenError(ValueError):
    """A configured token is unusable, or a non-loopback bind has no configured token."""


class TokenSource(enum.StrEnum):
    """Where the token in use came from."""

    environment = "environment"
    created = "created"  # made now, in the data directory
    file = "file"  # made by an earlier start


@dataclass(frozen=True)
class DashboardToken:
    """The token in use, where it came from, and its file (when it has one)."""

    value: str
    source: TokenSource
    path: Path | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(data_dir: Path, host: str) -> DashboardToken:
    """The token to require for writes when serving on ``host``.

    Raises
    ------
    TokenError
        When the environment's token is too short, or ``host`` is not a loopback
        address and no token is configured in the environment.
    """
    configured = configured_token(host)
    if configured is not None:
        return DashboardToken(configured, TokenSource.environment)
    return token_file(data_dir)


def configured_token(host: str) -> str | None:
    """The token from the environment; None (allowed on loopback only) when unset.

    Raises
    ------
    TokenError
        When it is too short, or unset while ``host`` is not a loopback address.
    """
    configured = os.environ.get(TOKEN_ENV)
    if configured is not None:
        if len(configured.strip()) < MIN_TOKEN_LENGTH:
            raise TokenError(
                f"{TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters; "
                "make one with `python -c 'import secrets; print(secrets.token_urlsafe())'`"
            )
        return configured.strip()
    if not is_loopback(host):
        raise TokenError(
            f"refusing to serve on {host} (not a loopback address) without a configured "
            f"token: set {TOKEN_ENV}, or bind to 127.0.0.1"
        )
    return None


def token_file(data_dir: Path) -> DashboardToken:
    """The token kept in ``data_dir``, created there (mode 0600) when missing."""
    path = data_dir / TOKEN_FILE
    if path.is_file():
        return DashboardToken(path.read_text().strip(), TokenSource.file, path)
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    return DashboardToken(value, TokenSource.created, path)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a request's token with the expected one."""
    if not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())
