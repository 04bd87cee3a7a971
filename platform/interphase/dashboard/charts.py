"""Plotly figures as plain data, drawn in the browser by ``static/dashboard.js``.

A view builds a figure with these helpers and passes it to the ``chart`` macro
(``templates/_macros.html``), which writes it as JSON (``tojson``) beside the
element Plotly draws into. Campaign and iteration views add their figures here
(uncertainty histograms with the threshold, learning curves, parity plots).
"""

from __future__ import annotations

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
