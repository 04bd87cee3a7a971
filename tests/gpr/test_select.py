"""select_uncertain: threshold, ordering, cap, and candidates no GP could judge."""

from __future__ import annotations

import numpy as np
import pytest

from interphase.gpr.select import select_uncertain


def test_selects_above_threshold_most_uncertain_first() -> None:
    std = np.array([1e-3, 5e-3, 2e-4, 8e-3, 3e-3])
    np.testing.assert_array_equal(select_uncertain(std, 2e-3, 10), [3, 1, 4])


def test_threshold_is_strict_and_cap_applies() -> None:
    std = np.array([2e-3, 4e-3, 3e-3, 5e-3])
    np.testing.assert_array_equal(select_uncertain(std, 2e-3, 2), [3, 1])
    assert select_uncertain(std, 2e-3, 0).size == 0


def test_nan_and_inf_count_as_maximally_uncertain() -> None:
    std = np.array([1e-2, np.nan, 5e-3, np.inf, 1e-6])
    selected = select_uncertain(std, 1e-3, 3)
    np.testing.assert_array_equal(selected, [1, 3, 0])
    assert selected.dtype == np.int64
    # Nothing is strictly above an infinite threshold, not even unjudged candidates.
    assert select_uncertain(std, np.inf, 5).size == 0


def test_nothing_uncertain_gives_empty_result() -> None:
    assert select_uncertain(np.array([1e-5, 2e-5]), 1e-3, 5).size == 0
    assert select_uncertain(np.array([]), 1e-3, 5).size == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one-dimensional"):
        select_uncertain(np.ones((2, 2)), 1e-3, 1)
    with pytest.raises(ValueError, match="max_count"):
        select_uncertain(np.ones(2), 1e-3, -1)
