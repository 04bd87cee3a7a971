"""Calibration figures on data with a known σ, and the selection strategies' contracts."""

from __future__ import annotations

import numpy as np
import pytest

from interphase.gpr.calibration import (
    GAUSSIAN_COVERAGE_1SIGMA,
    GAUSSIAN_COVERAGE_2SIGMA,
    CalibrationError,
    calibration,
    fitted_scale,
)
from interphase.gpr.strategies import Strategy, farthest_points, pick


def _gaussian(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Errors drawn with a per-point σ between 1 and 10 (meV/atom)."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(1.0, 10.0, n)
    return rng.normal(0.0, sigma), sigma


def test_calibrated_sigma_gives_zms_one_and_gaussian_coverage() -> None:
    errors, sigma = _gaussian(20_000, seed=1)
    c = calibration(errors, sigma)
    assert c.zms == pytest.approx(1.0, abs=0.05)
    assert c.coverage_1sigma == pytest.approx(GAUSSIAN_COVERAGE_1SIGMA, abs=0.02)
    assert c.coverage_2sigma == pytest.approx(GAUSSIAN_COVERAGE_2SIGMA, abs=0.01)
    assert c.miscalibration_area < 0.02
    assert c.spearman is not None and c.spearman > 0.3  # larger σ, larger |error|


def test_sigma_half_the_truth_gives_zms_four_and_a_scale_of_two() -> None:
    errors, sigma = _gaussian(20_000, seed=2)
    c = calibration(errors, sigma / 2)
    assert c.zms == pytest.approx(4.0, rel=0.05)
    assert c.scale == pytest.approx(2.0, rel=0.03)
    assert c.coverage_1sigma < 0.45 and c.miscalibration_area > 0.15
    # Rescaling by the factor fitted on this batch calibrates a fresh one.
    scale = fitted_scale([(errors, sigma / 2)])
    assert scale is not None
    fresh_errors, fresh_sigma = _gaussian(20_000, seed=3)
    assert calibration(fresh_errors, fresh_sigma / 2 * scale).zms == pytest.approx(1.0, abs=0.08)


def test_no_earlier_picks_means_no_scale() -> None:
    assert fitted_scale([]) is None
    assert fitted_scale([(np.array([np.nan]), np.array([1.0]))]) is None


def test_unjudged_points_are_left_out_and_bad_input_is_refused() -> None:
    c = calibration([1.0, 2.0, np.nan], [1.0, np.inf, 1.0])
    assert c.n == 1 and c.spearman is None
    with pytest.raises(CalibrationError, match="one σ per error"):
        calibration([1.0, 2.0], [1.0])
    with pytest.raises(CalibrationError, match="positive"):
        calibration([1.0], [0.0])


def test_every_strategy_respects_the_budget_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    std = rng.uniform(0.0, 10.0, 200)
    features = rng.normal(size=(200, 5))
    labeled = rng.normal(size=(30, 5))
    for strategy in Strategy:
        runs = [
            pick(
                strategy,
                budget=12,
                seed=7,
                std_per_atom=std,
                threshold=2.0,
                features=features,
                labeled_features=labeled,
            )
            for _ in range(2)
        ]
        assert len(runs[0]) <= 12 and len(set(runs[0].tolist())) == len(runs[0])
        assert np.array_equal(runs[0], runs[1]), strategy
    assert len(pick("random", budget=12, seed=7, std_per_atom=std)) == 12
    other = pick("random", budget=12, seed=8, std_per_atom=std)
    assert not np.array_equal(pick("random", budget=12, seed=7, std_per_atom=std), other)


def test_uncertainty_diverse_picks_only_uncertain_and_spreads_them() -> None:
    # Two tight clusters of uncertain candidates and one of certain ones.
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 0.01, (10, 2))
    b = rng.normal(5.0, 0.01, (10, 2))
    c = rng.normal(-5.0, 0.01, (10, 2))
    features = np.vstack([a, b, c])
    std = np.concatenate([np.full(10, 9.0), np.full(10, 8.0), np.full(10, 0.5)])
    picks = pick(
        "uncertainty_diverse", budget=2, seed=0, std_per_atom=std, threshold=1.0,
        features=features,
    )  # fmt: skip
    assert set(picks.tolist()) <= set(range(20))
    assert {int(p) // 10 for p in picks} == {0, 1}  # one from each uncertain cluster
    # Top-k by σ alone would take both from the first cluster.
    assert {int(p) // 10 for p in pick("uncertainty", budget=2, seed=0, std_per_atom=std,
                                       threshold=1.0)} == {0}  # fmt: skip


def test_farthest_points_avoid_labeled_structures_and_copies() -> None:
    features = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    assert farthest_points(features, 4, labeled=np.array([[10.0, 0.0]])).tolist() == [0, 2]
    assert farthest_points(features, 2).tolist()[0] == 3  # farthest from the mean first


def test_bad_strategy_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="not a valid Strategy"):
        pick("greedy", budget=1, seed=0, std_per_atom=np.ones(3), threshold=0.1)
    with pytest.raises(ValueError, match="budget"):
        pick("random", budget=-1, seed=0, std_per_atom=np.ones(3))
    with pytest.raises(ValueError, match="feature row"):
        pick("diverse", budget=1, seed=0, std_per_atom=np.ones(3))
