"""``interphase dashboard``: serve the web dashboard over the configured database."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated

import typer

from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

if TYPE_CHECKING:
    from interphase.dashboard.security import DashboardToken


class PortInUseError(ValueError):
    """The address to serve on is taken (or not this machine's)."""


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            raise PortInUseError(
                f"cannot serve on {host}:{port} ({error.strerror}); choose another --port"
            ) from None


def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to serve on; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8050,
) -> None:
    """Serve the dashboard (jobs, structures, models, campaigns); writes need the token."""
    from interphase.dashboard.security import (
        TOKEN_HEADER,
        configured_token,
        loopback_host_names,
        resolve_token,
    )
    from interphase.db.session import database_url, redacted_url
    from interphase.settings import get_settings

    try:
        configured_token(host)  # refuses a non-loopback address without a configured token
        open_database()
        _check_free(host, port)
        token = resolve_token(get_settings().data_dir, host)  # may make (and print) one
    except USER_ERRORS as error:
        fail(error)
    import uvicorn

    from interphase.dashboard.app import create_app

    # On loopback, only this machine's names are answered (against DNS rebinding).
    names = loopback_host_names(host)
    app = create_app(token=token.value, allowed_hosts=None if names is None else sorted(names))
    bare = host.strip("[]")  # an IPv6 address may be given with or without brackets
    shown_host = f"[{bare}]" if ":" in bare else bare
    console.print(
        f"interphase dashboard on http://{shown_host}:{port}/", soft_wrap=True, markup=False
    )
    console.print(f"database {redacted_url(database_url())}", soft_wrap=True, markup=False)
    _print_token(token)
    err_console.print(
        f"reads are open; writes send the token as the {TOKEN_HEADER} header", style="dim"
    )
    uvicorn.run(app, host=bare, port=port, log_level="warning", access_log=False)


def _print_token(token: DashboardToken) -> None:
    """Where the write token comes from; a token made now is shown, once."""
    from interphase.dashboard.security import TokenSource

    if token.source is TokenSource.created:
        console.print(
            f"write token (saved in {token.path}, mode 0600; shown once): {token.value}",
            soft_wrap=True,
            markup=False,
        )
    elif token.source is TokenSource.memory:
        console.print(
            f"write token (not saved: cannot write {token.path}: {token.problem}; valid while "
            f"this dashboard runs; shown once): {token.value}",
            soft_wrap=True,
            markup=False,
        )
    elif token.source is TokenSource.file:
        err_console.print(f"write token: in {token.path}", soft_wrap=True, markup=False)
    else:
        err_console.print("write token: from INTERPHASE_DASHBOARD_TOKEN")
