"""Jinja2 templates of the dashboard: autoescaped, with a few display filters.

Every stored string reaches the page through autoescaping (no ``|safe`` on
data); chart data goes through ``tojson`` inside ``<script type="application/json">``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from interphase.dashboard.database import state_of

TEMPLATES_DIR = Path(__file__).parent / "templates"


def as_utc(moment: datetime | None) -> datetime | None:
    """Aware UTC datetime (SQLite hands back naive datetimes that are UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime | None) -> str:
    """``2026-12-02 08:17:05`` (UTC) or an empty string."""
    moment = as_utc(moment)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago (``12 s ago``) or how far ahead (``in 4 min``) a moment is."""
    moment = as_utc(moment)
    if moment is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    text = format_seconds(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``310 ms``, ``3.10 s``, ``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_number(value: float | int | None, digits: int = 3) -> str:
    """Numbers with thousands separators; floats to ``digits`` significant figures."""
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def element_symbols(numbers: list[int]) -> str:
    """``[1, 3, 8]`` → ``H Li O``."""
    from ase.data import chemical_symbols

    return " ".join(chemical_symbols[int(z)] for z in numbers)


def format_reason(detail: Mapping[str, Any]) -> str:
    """A job's ``reason_detail`` as a sentence, numbers to 3 significant figures.

    ``{"gpr_model_id": 7, "predicted_std_per_atom_mev": 12.345678901234567,
    "threshold_per_atom_mev": 5.0, …}`` → ``GP 7 predicted a std of 12.3 meV/atom
    (threshold 5 meV/atom)``; other keys as ``key value``.
    """
    rest = dict(detail)
    parts = []
    if {"gpr_model_id", "predicted_std_per_atom_mev", "threshold_per_atom_mev"} & rest.keys():
        model = rest.pop("gpr_model_id", None)
        std = rest.pop("predicted_std_per_atom_mev", None)
        threshold = rest.pop("threshold_per_atom_mev", None)
        for duplicate in ("predicted_std_per_atom_hartree", "threshold_per_atom_hartree"):
            rest.pop(duplicate, None)  # the same numbers in Hartree
        who = "no GP" if model is None else f"GP {model}"
        what = "no std" if std is None else f"a std of {_short(std)} meV/atom"
        sentence = f"{who} predicted {what}"
        if threshold is not None:
            sentence += f" (threshold {_short(threshold)} meV/atom)"
        parts.append(sentence)
    if (rmsd := rest.pop("min_rmsd_angstrom", None)) is not None:
        parts.append(f"picks at least {_short(rmsd)} Å apart")
    parts += [f"{key.replace('_', ' ')} {_short(value)}" for key, value in sorted(rest.items())]
    return "; ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, (str, int)):
        return str(value)
    return json.dumps(value, default=str)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def make_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        time=format_time,
        age=format_age,
        seconds=format_seconds,
        number=format_number,
        pretty_json=pretty_json,
        reason=format_reason,
        symbols=element_symbols,
    )
    return environment


ENVIRONMENT = make_environment()


def is_fragment_request(request: Request) -> bool:
    """Whether htmx asked (it wants a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A template rendered with the request and the dashboard's common values."""
    page = ENVIRONMENT.get_template(template).render(
        request=request,
        database=state_of(request).database,
        now=datetime.now(UTC),
        **context,
    )
    return HTMLResponse(page, status_code=status_code)


def error_page(request: Request, status: int, title: str, text: str) -> HTMLResponse:
    """A one-line error: a fragment for htmx, a page otherwise."""
    if is_fragment_request(request):
        return render(request, "_message.html", {"kind": "error", "text": text}, status)
    return render(request, "error.html", {"status": status, "title": title, "text": text}, status)
