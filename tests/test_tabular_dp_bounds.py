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
