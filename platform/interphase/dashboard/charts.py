"""Plotly figures as plain data, drawn in the browser by ``static/dashboard.js``.

A view builds a figure with these helpers and passes it to the ``chart`` macro
(``templates/_macros.html``), which writes it as JSON (``tojson``) beside the
element Plotly draws into: line charts (learning and training curves),
histograms binned on the server (candidate uncertainty, with the threshold
drawn), stacked bars (job outcomes) and parity scatter plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Figure = dict[str, Any]

#: A palette that stays readable in print and for common colour blindness.
COLOURS = ("#1f6fb2", "#d9822b", "#2e9e5b", "#c0392b", "#7d5ba6", "#8c6d31", "#17a2b8")


@dataclass(frozen=True)
class Series:
    """One line of a line chart (``y`` may hold None where a value is missing)."""

    name: str
    x: Sequence[float | int]
    y: Sequence[float | None]
    dash: str | None = None  # "dot" for e.g. the training split beside validation
    colour: str | None = None


def _layout(x_title: str, y_title: str, *, log_y: bool = False) -> dict[str, Any]:
    return {
        "margin": {"l": 64, "r": 16, "t": 16, "b": 40},
        "xaxis": {"title": {"text": x_title}, "zeroline": False, "gridcolor": "#e5e7eb"},
        "yaxis": {
            "title": {"text": y_title},
            "type": "log" if log_y else "linear",
            "zeroline": False,
            "gridcolor": "#e5e7eb",
        },
        "legend": {"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top"},
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "hovermode": "x unified",
    }


def line_figure(
    series: Sequence[Series], *, x_title: str, y_title: str, log_y: bool = False
) -> Figure:
    """Lines with markers, one per series."""
    traces = []
    for k, one in enumerate(series):
        colour = one.colour or COLOURS[k % len(COLOURS)]
        line: dict[str, Any] = {"color": colour, "width": 2}
        if one.dash:
            line["dash"] = one.dash
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(one.x) <= 60 else "lines",
                "name": one.name,
                "x": list(one.x),
                "y": list(one.y),
                "line": line,
                "marker": {"size": 5, "color": colour},
            }
        )
    return {"data": traces, "layout": _layout(x_title, y_title, log_y=log_y)}


def bar_figure(
    categories: Sequence[str], values: Sequence[float | int], *, x_title: str, y_title: str
) -> Figure:
    """One bar per category."""
    trace = {
        "type": "bar",
        "x": list(categories),
        "y": list(values),
        "marker": {"color": COLOURS[0]},
    }
    layout = _layout(x_title, y_title)
    layout["hovermode"] = "closest"
    return {"data": [trace], "layout": layout}


def histogram_figure(
    values: Sequence[float], *, x_title: str, threshold: float | None = None
) -> Figure:
    """A histogram of ``values``, with a vertical line at ``threshold`` when given."""
    layout = _layout(x_title, "count")
    layout["hovermode"] = "closest"
    if threshold is not None:
        layout["shapes"] = [
            {
                "type": "line",
                "x0": threshold,
                "x1": threshold,
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"color": COLOURS[3], "dash": "dash"},
            }
        ]
    trace = {"type": "histogram", "x": list(values), "marker": {"color": COLOURS[0]}}
    return {"data": [trace], "layout": layout}


def _threshold_line(threshold: float) -> dict[str, Any]:
    return {
        "type": "line",
        "x0": threshold,
        "x1": threshold,
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "line": {"color": COLOURS[3], "dash": "dash", "width": 2},
    }


@dataclass(frozen=True)
class BinnedSeries:
    """Counts per bin (``edges`` has one more value than ``counts``)."""

    name: str
    edges: Sequence[float]
    counts: Sequence[int]
    colour: str | None = None


def binned_histogram_figure(
    series: Sequence[BinnedSeries],
    *,
    x_title: str,
    threshold: float | None = None,
    log_x: bool = True,
) -> Figure:
    """Histograms binned on the server, drawn as steps (one per series) over a shared axis.

    Bins are given, not raw values, so a page with 100,000 scores sends a few
    hundred numbers; a vertical dashed line marks ``threshold`` when given.
    """
    traces = []
    for k, one in enumerate(series):
        colour = one.colour or COLOURS[k % len(COLOURS)]
        edges, counts = list(one.edges), list(one.counts)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hv", "color": colour, "width": 2},
                "name": one.name,
                "x": edges,
                "y": [*counts, counts[-1] if counts else 0],
                "hovertemplate": "%{x:.3g}: %{y}<extra>%{fullData.name}</extra>",
            }
        )
    layout = _layout(x_title, "candidates")
    layout["hovermode"] = "closest"
    layout["xaxis"]["type"] = "log" if log_x else "linear"
    if threshold is not None:
        layout["shapes"] = [_threshold_line(threshold)]
        layout["annotations"] = [
            {
                "x": threshold,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": f"threshold {threshold:g}",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
                "font": {"color": COLOURS[3]},
            }
        ]
        if log_x:  # on a log axis Plotly takes shapes in data units, annotations in log10
            layout["annotations"][0]["x"] = _log10(threshold)
    return {"data": traces, "layout": layout}


def _log10(value: float) -> float:
    return math.log10(value) if value > 0 else 0.0


def stacked_bar_figure(
    categories: Sequence[str],
    stacks: dict[str, Sequence[int]],
    *,
    x_title: str,
    y_title: str,
    colours: dict[str, str] | None = None,
) -> Figure:
    """Bars per category, one stacked segment per key of ``stacks``."""
    traces = [
        {
            "type": "bar",
            "name": name,
            "x": list(categories),
            "y": list(values),
            "marker": {"color": (colours or {}).get(name, COLOURS[k % len(COLOURS)])},
        }
        for k, (name, values) in enumerate(stacks.items())
    ]
    layout = _layout(x_title, y_title)
    layout["barmode"] = "stack"
    layout["xaxis"]["type"] = "category"
    return {"data": traces, "layout": layout}


@dataclass(frozen=True)
class ScatterSeries:
    name: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str | None = None


def parity_figure(series: Sequence[ScatterSeries], *, quantity: str) -> Figure:
    """Predicted against reference, with the diagonal ``y = x``.

    Always SVG (``scatter``): Plotly's WebGL scatter needs ``eval``, which the
    page's Content-Security-Policy forbids, so callers thin long series.
    """
    traces: list[dict[str, Any]] = []
    values = [v for one in series for v in (*one.x, *one.y)]
    for k, one in enumerate(series):
        colour = one.colour or COLOURS[k % len(COLOURS)]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": one.name,
                "x": list(one.x),
                "y": list(one.y),
                "marker": {"size": 5, "color": colour, "opacity": 0.7},
            }
        )
    x_title, y_title = _two_lines(f"reference {quantity}"), _two_lines(f"predicted {quantity}")
    layout = _layout(x_title, y_title)
    layout["hovermode"] = "closest"
    # The upper left of a parity plot is empty: the legend goes there, the titles get room.
    layout["legend"] = {
        "x": 0.01,
        "y": 0.99,
        "xanchor": "left",
        "yanchor": "top",
        "bgcolor": "rgba(255, 255, 255, 0.85)",
    }
    if "<br>" in y_title:
        layout["margin"].update(l=84, b=60)
    if values:
        low, high = min(values), max(values)
        pad = 0.02 * (high - low or 1.0)
        layout["shapes"] = [
            {
                "type": "line",
                "x0": low - pad,
                "y0": low - pad,
                "x1": high + pad,
                "y1": high + pad,
                "line": {"color": "#9aa5b1", "dash": "dot", "width": 1},
            }
        ]
    return {"data": traces, "layout": layout}


def _two_lines(title: str, width: int = 40) -> str:
    """``title`` broken at the space nearest its middle when longer than ``width`` characters.

    A y-axis title longer than the chart is tall is cut off by Plotly.
    """
    if len(title) <= width or " " not in title:
        return title
    spaces = [k for k, c in enumerate(title) if c == " "]
    middle = min(spaces, key=lambda k: abs(k - len(title) / 2))
    return f"{title[:middle]}<br>{title[middle + 1 :]}"
