"""The dashboard's write token and the rules around it.

Reads need no token. Every write (resubmit, cancel, and later: stop a campaign)
must carry the token in the :data:`TOKEN_HEADER` request header; a browser
never sends a custom header with a cross-site form, so such a form cannot post.
The token is ``INTERPHASE_DASHBOARD_TOKEN``, or one made on first start and kept
in the data directory (mode 0600); where the data directory cannot be written
(a read-only mount), the token made is kept in memory for that process only.
Tokens are compared in constant time.

Served on a loopback address, the dashboard answers only requests whose
``Host`` names this machine (:func:`loopback_host_names`), so a page whose DNS
name is rebound to 127.0.0.1 or ::1 cannot read it.
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
    memory = "memory"  # made now; the data directory cannot be written, so never saved


@dataclass(frozen=True)
class DashboardToken:
    """The token in use, where it came from, and its file (when it has one).

    For a :attr:`TokenSource.memory` token, ``path`` is where it could not be
    saved and ``problem`` says why.
    """

    value: str
    source: TokenSource
    path: Path | None = None
    problem: str | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_host_names(host: str) -> frozenset[str] | None:
    """The ``Host`` names to answer when serving on ``host``; None: any (not loopback).

    On a loopback address only this machine's names are answered (against DNS
    rebinding), whichever loopback address is bound: ``localhost``,
    ``127.0.0.1``, ``::1`` and ``host`` itself (e.g. ``127.0.0.2``).
    """
    if not is_loopback(host):
        return None
    return frozenset({"localhost", "127.0.0.1", "::1", host_name(host)})


def host_name(host: str) -> str:
    """The name in a ``Host`` header or address, lower case, without port or brackets.

    ``[::1]:8050`` → ``::1``; ``LocalHost:8050`` → ``localhost``; ``::1`` → ``::1``.
    A malformed value (``[::1``) gives an empty name, which no allow-list holds.
    """
    text = host.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            return ""
        return text[1:end]
    if text.count(":") == 1:  # name:port (more colons: a bare IPv6 address)
        text = text.split(":", 1)[0]
    return text.rstrip(".")


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
    """The token kept in ``data_dir``, created there (mode 0600) when missing.

    Where it cannot be created (a read-only data directory, or one that is not
    a directory), a new token is returned as :attr:`TokenSource.memory`: it
    serves this process only and must be shown to the user.

    Raises
    ------
    TokenError
        When the token file exists but cannot be read.
    """
    path = data_dir / TOKEN_FILE
    if path.is_file():
        return _read_token(path)
    value = secrets.token_urlsafe(32)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # EROFS, EACCES, a file in the way: serve without saving it
        return DashboardToken(value, TokenSource.memory, path, _reason(error, data_dir))
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.is_file():  # another dashboard made it meanwhile: use theirs
            return _read_token(path)
        return DashboardToken(value, TokenSource.memory, path, "it exists and is not a file")
    except OSError as error:
        return DashboardToken(value, TokenSource.memory, path, _reason(error, path))
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
    except OSError as error:  # a full disk: leave no empty token file behind
        path.unlink(missing_ok=True)
        return DashboardToken(value, TokenSource.memory, path, _reason(error, path))
    return DashboardToken(value, TokenSource.created, path)


def _reason(error: OSError, path: Path) -> str:
    if isinstance(error, FileExistsError):
        return f"{path} exists and is not a directory"
    return error.strerror or str(error)


def _read_token(path: Path) -> DashboardToken:
    try:
        value = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise TokenError(
            f"cannot read the dashboard token {path} ({reason}); fix its permissions, "
            f"delete it to make a new one, or set {TOKEN_ENV}"
        ) from None
    if not value:
        raise TokenError(
            f"the dashboard token {path} is empty; delete it to make a new one, or set {TOKEN_ENV}"
        )
    return DashboardToken(value, TokenSource.file, path)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a request's token with the expected one."""
    if not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())
