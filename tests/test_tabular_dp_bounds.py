"""DP bounds: a warning when the noise swamps every public bin, none when the data is large enough."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dpsynth.tabular import dp_domain


def test_warns_when_no_bin_clears_the_threshold():
    values = np.random.default_rng(0).uniform(1.0, 5.0, size=30)
    with pytest.warns(dp_domain.UnreliableDPBoundsWarning, match="malic_acid"):
        dp_domain.dp_bounds(values, sigma=200.0, rng=np.random.default_rng(1), column="malic_acid")


def test_bounds_cover_the_data_and_do_not_warn_when_counts_are_large():
    values = np.random.default_rng(0).uniform(1.0, 5.0, size=20_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dp_domain.UnreliableDPBoundsWarning)
        lo, hi = dp_domain.dp_bounds(values, sigma=5.0, rng=np.random.default_rng(1), column="x")
    assert lo <= 1.0 + 1e-9 and hi >= 5.0 - 1e-9
    assert lo >= 0.5 and hi <= 8.0  # within one public sqrt(2) bin of the data's range


def test_thin_right_tail_of_a_zero_inflated_column_is_kept():
    rng = np.random.default_rng(5)
    n = 32_561
    values = np.where(rng.random(n) < 0.92, 0.0, rng.integers(1, 20_000, n)).astype(float)
    lo, hi = dp_domain.dp_bounds(values, sigma=48.0, rng=rng, column="capital_gain")
    assert lo <= 0.0 and hi >= 16_384  # no single sqrt(2) bin clears the threshold above 0 at this n


def test_bounds_windows_rarely_invent_a_bound_from_noise():
    rng = np.random.default_rng(6)
    values = np.full(5000, 10.0)
    grid = dp_domain.numeric_candidates()
    spurious = 0
    for _ in range(200):
        lo, hi = dp_domain.dp_bounds(values, sigma=5.0, rng=rng)
        spurious += not (grid[grid <= 10.0][-1] - 1e-9 <= lo and hi <= grid[grid > 10.0][0] + 1e-9)
    assert spurious <= 8  # stated rate: at most 1% per column (binomial slack for 200 draws)
