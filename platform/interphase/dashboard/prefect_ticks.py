"""Ticks and next runs of scheduled campaigns, read from Prefect's REST API.

Schedules live in the interphase database; their ticks (flow runs) live only on
the Prefect server that runs them. The dashboard does not import Prefect (slow
to import, and its client retries a dead server for about a minute): it asks
the API a few questions over HTTP, each with a short timeout, and shows what it
got or why it got nothing. The API is the one ``interphase campaign schedules``
reads: ``PREFECT_API_URL``, else that of an ``interphase serve`` running on the
data directory (whose embedded server has no UI to link to).
"""

from __future__ import annotations

import base64
import enum
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from interphase.campaign.ticks import FLOW_NAME, TickRun, running_serve_api

#: Seconds to wait for each answer of the Prefect API.
API_TIMEOUT_S = 2.0
#: The newest ticks read, over all campaigns (Prefect's default page limit).
TICKS_READ = 200
#: The most bytes read from one answer (200 flow runs take a few hundred kB).
MAX_ANSWER_BYTES = 16 * 2**20
#: States of a tick that has not begun: Prefect creates scheduled runs ahead of time.
NOT_BEGUN = ["SCHEDULED", "PENDING", "PAUSED"]


class PrefectSource(enum.StrEnum):
    """Where the dashboard learnt the Prefect API's address."""

    configured = "PREFECT_API_URL"
    serve = "interphase serve"


@dataclass(frozen=True)
class PrefectApi:
    """A Prefect API to read ticks from, and its UI for links (None: no UI known)."""

    url: str
    source: PrefectSource
    ui_url: str | None

    @property
    def shown(self) -> str:
        """The URL without any user name or password in it."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))

    def flow_run_url(self, run_id: UUID) -> str | None:
        """The UI's page of flow run ``run_id``."""
        return None if self.ui_url is None else f"{self.ui_url}/runs/flow-run/{run_id}"


def prefect_api(data_dir: Path) -> PrefectApi | None:
    """The configured API (``PREFECT_API_URL``), else a running serve's, else None."""
    configured = os.environ.get("PREFECT_API_URL", "").strip().rstrip("/")
    if configured:
        return PrefectApi(configured, PrefectSource.configured, prefect_ui_url(configured))
    served = running_serve_api(data_dir)
    if served:  # serve's own server runs with the UI off
        return PrefectApi(served.rstrip("/"), PrefectSource.serve, None)
    return None


def prefect_ui_url(api_url: str) -> str | None:
    """``PREFECT_UI_URL``, else the API URL less its ``/api`` (a self-hosted server)."""
    explicit = os.environ.get("PREFECT_UI_URL", "").strip().rstrip("/")
    if explicit.startswith(("http://", "https://")):
        return explicit
    if api_url.endswith("/api") and api_url.startswith(("http://", "https://")):
        return api_url.removesuffix("/api")
    return None  # e.g. Prefect Cloud, whose UI address differs from its API's


@dataclass(frozen=True)
class Deployment:
    """A scheduled campaign's deployment on the Prefect server."""

    id: UUID
    campaign: str
    paused: bool
    #: The earliest run Prefect has scheduled (may be overdue when nothing picks it up).
    next_run: datetime | None = None


@dataclass(frozen=True)
class PrefectTicks:
    """What the Prefect API said, or why it said nothing (``error``)."""

    api: PrefectApi
    ticks: list[TickRun]  # newest first, all campaigns
    deployments: dict[str, Deployment]  # by campaign name
    error: str | None = None

    def of(self, campaign: str) -> list[TickRun]:
        return [tick for tick in self.ticks if tick.campaign == campaign]


class PrefectReadError(RuntimeError):
    """The Prefect API did not answer, or answered something else than Prefect's data."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")  # Prefect's records carry many more fields


class _State(_Model):
    type: str
    name: str | None = None
    message: str | None = None


class _FlowRun(_Model):
    id: UUID
    deployment_id: UUID | None = None
    parameters: dict[str, Any] = {}
    state: _State | None = None
    expected_start_time: datetime | None = None


class _Schedule(_Model):
    active: bool = True


class _Deployment(_Model):
    id: UUID
    name: str
    paused: bool = False
    schedules: list[_Schedule] = []


_FLOW_RUNS = TypeAdapter(list[_FlowRun])
_DEPLOYMENTS = TypeAdapter(list[_Deployment])
_OUR_FLOW = {"name": {"any_": [FLOW_NAME]}}


def read_ticks(
    api: PrefectApi, campaigns: Collection[str], timeout_s: float = API_TIMEOUT_S
) -> PrefectTicks:
    """Deployments, the newest :data:`TICKS_READ` ticks, and the next run of each of ``campaigns``.

    Never raises for an unreachable or unhappy server: ``error`` says what went wrong.
    """
    try:
        deployments = _deployments(api, timeout_s)
        names = {d.id: d.name for d in deployments}
        runs: list[_FlowRun] = _read(api, "/flow_runs/filter", _FLOW_RUNS, {
            "flows": _OUR_FLOW,
            "flow_runs": {"state": {"type": {"not_any_": NOT_BEGUN}}},
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": TICKS_READ,
        }, timeout_s)  # fmt: skip
        ticks = [_tick(run, names) for run in runs]
        by_campaign = {
            d.name: Deployment(
                d.id,
                d.name,
                paused=d.paused or not any(s.active for s in d.schedules),
                next_run=_next_run(api, d.id, timeout_s) if d.name in campaigns else None,
            )
            for d in deployments
        }
    except PrefectReadError as error:
        return PrefectTicks(api, [], {}, str(error))
    return PrefectTicks(api, ticks, by_campaign)


def _deployments(api: PrefectApi, timeout_s: float) -> list[_Deployment]:
    body = {"flows": _OUR_FLOW, "limit": TICKS_READ}
    deployments: list[_Deployment] = _read(
        api, "/deployments/filter", _DEPLOYMENTS, body, timeout_s
    )
    return deployments


def _next_run(api: PrefectApi, deployment_id: UUID, timeout_s: float) -> datetime | None:
    """The earliest scheduled run of the deployment (overdue ones included)."""
    runs: list[_FlowRun] = _read(api, "/flow_runs/filter", _FLOW_RUNS, {
        "deployments": {"id": {"any_": [str(deployment_id)]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": 1,
    }, timeout_s)  # fmt: skip
    return runs[0].expected_start_time if runs else None


def _tick(run: _FlowRun, deployment_names: dict[UUID, str]) -> TickRun:
    """A flow run as a tick; its campaign is its parameter (a deployment-less run has one too)."""
    campaign = run.parameters.get("campaign")
    if not isinstance(campaign, str):
        campaign = deployment_names.get(run.deployment_id, "?") if run.deployment_id else "?"
    state = run.state
    return TickRun(
        id=run.id,
        campaign=campaign,
        state=state.type if state else "UNKNOWN",
        state_name=(state.name or "") if state else "",
        message=(state.message or "") if state else "",
        scheduled_at=run.expected_start_time,
    )


def _headers() -> dict[str, str]:
    """JSON, and the credentials Prefect's own client would send (Cloud key, server auth)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if key := os.environ.get("PREFECT_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    elif auth := os.environ.get("PREFECT_API_AUTH_STRING"):
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return headers


def _read(
    api: PrefectApi,
    path: str,
    records: TypeAdapter[Any],
    body: dict[str, Any],
    timeout_s: float,
) -> Any:
    """The records Prefect answers a POST of ``body`` to ``path`` with.

    Raises
    ------
    PrefectReadError
        Naming the server, when it does not answer in time or answers something else.
    """
    request = urllib.request.Request(
        api.url + path, data=json.dumps(body).encode(), headers=_headers(), method="POST"
    )
    where = f"the Prefect server at {api.shown}"
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            answer: bytes = reply.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise PrefectReadError(f"{where} answered HTTP {error.code} to {path}") from None
    except OSError as error:  # refused, timed out, no such host (URLError, TimeoutError)
        reason = getattr(error, "reason", None) or error
        raise PrefectReadError(f"{where} is not reachable ({reason})") from None
    if len(answer) > MAX_ANSWER_BYTES:
        raise PrefectReadError(f"{where} answered over 16 MiB to {path}")
    try:
        return records.validate_json(answer)
    except ValidationError:
        raise PrefectReadError(f"{where} answered {path} with something else") from None
