"""Thinning parity series for SVG: the cap holds and the largest errors always survive."""

from __future__ import annotations

import numpy as np
import pytest

from interphase.dashboard.campaign_charts import parity_figures
from interphase.dashboard.charts import ScatterSeries, parity_figure
from interphase.dashboard.queries.parity import (
    LARGEST_ERRORS,
    MAX_POINTS,
    HeadParity,
    Parity,
    ParitySeries,
    thin_indices,
)


def noisy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(0.0, 1.0, n)
    return reference, reference + rng.normal(0.0, 0.05, n)


@pytest.mark.parametrize("n", [12_345, 1_000_000])
def test_the_largest_errors_survive_and_the_cap_holds(n: int) -> None:
    reference, predicted = noisy(n)
    worst = np.random.default_rng(1).choice(n, 40, replace=False)
    predicted[worst] += 2.0  # far above the 0.05 noise
    keep = thin_indices(reference, predicted)
    assert len(keep) == MAX_POINTS
    assert len(set(keep.tolist())) == MAX_POINTS  # no point twice
    assert set(worst.tolist()) <= set(keep.tolist())
    errors = np.abs(predicted - reference)
    assert errors[keep].min() <= np.quantile(errors, 0.01)  # the rest is sampled, not just the tail
    assert set(keep[-LARGEST_ERRORS:].tolist()) >= set(worst.tolist())  # drawn last, on top


def test_the_sample_of_the_rest_spans_the_series() -> None:
    reference, predicted = noisy(100_000)
    sample = np.sort(thin_indices(reference, predicted)[:-LARGEST_ERRORS])
    gaps = np.diff(sample)
    assert sample[0] < 200 and sample[-1] > 99_800
    assert gaps.max() < 3 * gaps.mean()  # evenly spaced, up to the removed largest errors


def test_short_series_are_kept_whole() -> None:
    reference, predicted = noisy(MAX_POINTS)
    assert thin_indices(reference, predicted).tolist() == list(range(MAX_POINTS))
    assert thin_indices(reference[:3], predicted[:3], cap=10).tolist() == [0, 1, 2]


def test_a_small_cap_keeps_only_the_largest_errors() -> None:
    reference, predicted = noisy(1000)
    keep = thin_indices(reference, predicted, cap=5, largest=50)
    errors = np.abs(predicted - reference)
    assert sorted(keep.tolist()) == sorted(np.argsort(errors)[-5:].tolist())


def test_parity_figures_never_use_webgl() -> None:
    """Plotly's ``scattergl`` needs ``eval``, which the dashboard's CSP forbids."""
    reference, predicted = noisy(50_000)
    direct = parity_figure([ScatterSeries("train", reference, predicted)], quantity="force")
    assert {t["type"] for t in direct["data"]} == {"scatter"}
    keep = thin_indices(reference, predicted)
    series = ParitySeries("train", reference[keep].tolist(), predicted[keep].tolist(), 50_000)
    head = HeadParity("GFN2-xTB", [series], [series, ParitySeries("validation", [1.0], [1.1], 1)])
    figures = parity_figures(Parity([head]))
    for figure in figures.values():
        assert {t["type"] for t in figure["data"]} == {"scatter"}
        assert all(len(t["x"]) <= MAX_POINTS for t in figure["data"])
    force = figures["parity-force-0"]["data"]
    assert [t["name"] for t in force] == ["train · 1,500 of 50,000", "validation"]
    assert force[0]["marker"]["color"] != force[1]["marker"]["color"]
