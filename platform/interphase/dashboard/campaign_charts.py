"""The figures of the campaign and iteration pages, from their query results."""

from __future__ import annotations

from typing import Any

from interphase.campaign.steps.evaluate import TestError
from interphase.dashboard.charts import (
    COLOURS,
    BinnedSeries,
    ScatterSeries,
    Series,
    binned_histogram_figure,
    line_figure,
    parity_figure,
    stacked_bar_figure,
)
from interphase.dashboard.queries.campaign_view import CampaignView
from interphase.dashboard.queries.parity import Parity, ParitySeries
from interphase.dashboard.queries.scores import ScoreDistribution

Figure = dict[str, Any]
#: Job states in the order their bars stack, with the badge colours of the page.
JOB_STATE_COLOURS = {
    "succeeded": "#2e7d4f",
    "failed": "#b42318",
    "cancelled": "#a15c07",
    "running": "#1f6fb2",
    "pending": "#9aa5b1",
}


def iteration_colour(k: int, n: int) -> str:
    """From light to dark blue along the iterations, so a shift over time reads at a glance."""
    t = 0.0 if n <= 1 else k / (n - 1)
    start, end = (158, 202, 225), (8, 48, 107)
    r, g, b = (round(a + (z - a) * t) for a, z in zip(start, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def uncertainty_histograms(
    scores: ScoreDistribution,
    thresholds: dict[str, float],
    labels: dict[int, str],
    stage: str = "select",
) -> dict[str, Figure]:
    """Per level: one step histogram per iteration (``labels``: iteration id -> name)."""
    figures = {}
    order = list(labels)
    for level in scores.levels:
        groups = [g for g in scores.groups if g.level == level and g.stage == stage]
        groups.sort(key=lambda g: order.index(g.iteration_id) if g.iteration_id in order else 0)
        if not groups:
            continue
        series = [
            BinnedSeries(
                name=labels.get(g.iteration_id, str(g.iteration_id))
                + (f" ({g.n_without_gp} no GP)" if g.n_without_gp else ""),
                edges=scores.edges_mev_per_atom[level],
                counts=g.counts,
                colour=iteration_colour(k, len(groups)) if len(groups) > 1 else COLOURS[0],
            )
            for k, g in enumerate(groups)
        ]
        figures[level] = binned_histogram_figure(
            series, x_title="predicted std (meV/atom)", threshold=thresholds.get(level)
        )
    return figures


def _error(errors: TestError | None, kind: str) -> float | None:
    """A head's test error of one iteration: ``energy`` (meV/atom) or ``force`` (meV/Å)."""
    if errors is None:
        return None
    return errors.energy_mae_mev_per_atom if kind == "energy" else errors.force_mae_mev_per_angstrom


def campaign_figures(view: CampaignView) -> dict[str, Any]:
    """Uncertainty per level, uncertain fractions, labels, learning curves, job outcomes."""
    lines = view.iterations
    x = [line.index for line in lines]
    names = {line.id: f"iteration {line.index}" for line in lines}
    scores = view.scores
    fractions = []
    for k, level in enumerate(scores.levels):
        for stage, dash in (("select", None), ("pool", "dot")):
            values = [
                None if (g := scores.group(line.id, level, stage)) is None else g.uncertain_fraction
                for line in lines
            ]
            if any(v is not None for v in values):
                label = f"{level} ({'selection' if stage == 'select' else 'next pool'})"
                fractions.append(Series(label, x, values, dash, COLOURS[k % len(COLOURS)]))
    energy = [
        Series(
            head,
            x,
            [_error(line.test_errors.get(head), "energy") for line in lines],
        )
        for head in view.heads
    ]
    force = [
        Series(
            head,
            x,
            [_error(line.test_errors.get(head), "force") for line in lines],
        )
        for head in view.heads
    ]
    labels = [Series(level, x, list(per)) for level, per in view.labels_cumulative.items()]
    states = [s for s in JOB_STATE_COLOURS if any(line.jobs.get(s) for line in lines)]
    figures: dict[str, Any] = {
        "uncertainty": uncertainty_histograms(scores, view.header.thresholds_mev_per_atom, names),
    }
    if fractions:
        figures["fraction"] = line_figure(
            fractions, x_title="iteration", y_title="uncertain fraction"
        )
    if labels:
        figures["labels"] = line_figure(labels, x_title="iteration", y_title="labels (cumulative)")
    if any(v is not None for s in energy for v in s.y):
        figures["energy"] = line_figure(
            energy, x_title="iteration", y_title="test energy MAE (meV/atom)"
        )
    if any(v is not None for s in force for v in s.y):
        figures["force"] = line_figure(force, x_title="iteration", y_title="test force MAE (meV/Å)")
    if states:
        figures["jobs"] = stacked_bar_figure(
            [f"iteration {i}" for i in x],
            {s: [line.jobs.get(s, 0) for line in lines] for s in states},
            x_title="iteration",
            y_title="labeling jobs",
            colours=JOB_STATE_COLOURS,
        )
    for figure in figures.values():
        if "layout" in figure and figure["layout"]["xaxis"]["title"]["text"] == "iteration":
            figure["layout"]["xaxis"]["dtick"] = 1
    return figures


#: One colour per split, whatever splits a run has: the held-out test split in red.
PARITY_COLOURS = {
    "train": COLOURS[0],
    "validation": COLOURS[1],
    "test (held out)": COLOURS[3],
    "train (synthetic)": COLOURS[2],
    "validation (synthetic)": COLOURS[4],
    "test (synthetic)": COLOURS[5],
}


def parity_figures(parity: Parity) -> dict[str, Figure]:
    """Per head: energy relative to a per-element reference (meV/atom), force components (eV/Å).

    A thinned series says so in its legend entry ("train · 1,500 of 12,345").
    """
    figures = {}
    for k, head in enumerate(parity.heads):
        if head.energy_mev_per_atom:
            figures[f"parity-energy-{k}"] = parity_figure(
                [_scatter(s) for s in head.energy_mev_per_atom], quantity=head.energy_quantity
            )
        if head.force_ev_per_angstrom:
            figures[f"parity-force-{k}"] = parity_figure(
                [_scatter(s) for s in head.force_ev_per_angstrom], quantity="force (eV/Å)"
            )
    return figures


def _scatter(series: ParitySeries) -> ScatterSeries:
    name = series.name
    if series.thinned:
        name = f"{name} · {len(series.reference):,} of {series.n_total:,}"
    colour = PARITY_COLOURS.get(series.name)
    return ScatterSeries(name, series.reference, series.predicted, colour)
