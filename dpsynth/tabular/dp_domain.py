"""DP mechanisms that release the parts of the domain the public metadata does not give.

Privacy unit: one row; add-or-remove-one neighbours. Each function is a pure mechanism; its event
is stated next to it and :mod:`dpsynth.tabular.plan` charges it to the ledger before it runs.

* :func:`dp_row_count` -- Gaussian mechanism on the row count (sensitivity 1):
  ``GaussianDpEvent(sigma)``.
* :func:`dp_bounds` -- a Gaussian histogram over **public** geometric bins (factor sqrt(2),
  1e-3..1e12 in magnitude, both signs; year bins 1900-2100 for datetimes); the bounds are the
  edges of the outermost bins whose noisy count clears a threshold (post-processing). One row is
  in one bin: L2 sensitivity 1, one ``GaussianDpEvent(sigma)`` per column. (An exponential-
  mechanism quantile over such a grid was tried first: with the many empty candidates below the
  data its picks were close to uniform at small epsilon.) Values outside the released bounds are
  clipped later, never revealed.
* :func:`dp_categories` -- thresholded Gaussian histogram (partition selection): each distinct
  value's count + N(0, sigma^2) is kept iff it exceeds ``threshold`` **and** the true count is at
  least ``min_count`` (2 by default: a value seen once never survives). A row touches one value,
  so the kept counts are a Gaussian mechanism of L2 sensitivity 1; a value whose count goes from
  ``min_count - 1`` to ``min_count`` appears with probability at most
  ``delta_threshold = P(min_count + N(0, sigma^2) > threshold)``. The guarantee is
  ``(epsilon_gauss(d1), d1 + delta_threshold)`` for every d1 (Gaussian partition selection;
  Desfontaines et al. 2022; Korolova et al. 2009).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm



class UnreliableDPBoundsWarning(UserWarning):
    """No public bin cleared the noise threshold: the released bounds are mostly noise."""


def dp_row_count(n: int, sigma: float, rng: np.random.Generator) -> int:
    """Noisy row count ``round(n + N(0, sigma^2))``, at least 2. Event: ``GaussianDpEvent(sigma)``."""
    return max(2, int(round(n + rng.normal(0.0, sigma))))


def numeric_candidates() -> np.ndarray:
    """The public bin edges for numeric bounds: 0 and +-2^(k/2), k = -20..80 (1e-3..1e12)."""
    mags = 2.0 ** (np.arange(-20, 81) / 2.0)
    return np.concatenate([-mags[::-1], [0.0], mags])


def datetime_candidates() -> np.ndarray:
    """The public bin edges for datetime bounds: year starts 1900-2100, in epoch seconds."""
    stamps = pd.date_range("1900-01-01", "2100-01-01", freq="YS")
    return stamps.asi8.astype(np.float64) / 1e9


def bounds_threshold(sigma: float, n_bins: int, false_bin_probability: float = 0.01) -> float:
    """Noisy-count threshold above which a bin counts as occupied (post-processing choice).

    An empty bin clears it with probability ``false_bin_probability / n_bins``, so a spurious far
    bound appears with probability at most ``false_bin_probability``.
    """
    return float(sigma * norm.isf(false_bin_probability / max(n_bins, 1)))


def dp_bounds(
    values: np.ndarray,
    sigma: float,
    rng: np.random.Generator,
    candidates: np.ndarray | None = None,
    column: str = "a column",
) -> tuple[float, float]:
    """DP (lower, upper) from a Gaussian histogram over public bins; ``GaussianDpEvent(sigma)``.

    The bins are the intervals between consecutive public ``candidates`` (plus one below and one
    above the grid); a row falls into one bin, so the histogram has L2 sensitivity 1. The bounds
    are the outer edges of the lowest and highest bins whose noisy count clears
    :func:`bounds_threshold` -- post-processing. If no bin clears it (too few rows for the
    noise), the bin with the largest noisy count is used and an :class:`UnreliableDPBoundsWarning`
    says so (the warning depends only on the noisy histogram: post-processing).
    """
    grid = numeric_candidates() if candidates is None else np.asarray(candidates, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    bins = np.searchsorted(grid, x, side="right")  # 0 .. len(grid)
    counts = np.bincount(bins, minlength=len(grid) + 1).astype(np.float64)
    noisy = counts + rng.normal(0.0, sigma, size=counts.shape)
    occupied = np.flatnonzero(noisy > bounds_threshold(sigma, counts.size))
    # Outer edges: bin b spans [grid[b-1], grid[b]); the open-ended bins map to the grid's ends.
    if occupied.size == 0:
        occupied = np.array([int(np.argmax(noisy))])
        warnings.warn(
            f"DP bounds for {column}: no public bin's noisy count cleared the threshold (too few rows "
            "for this share of the budget), so the released bounds are mostly noise and the column's "
            "synthetic values may be far off. Give public bounds for it in the metadata.",
            UnreliableDPBoundsWarning,
            stacklevel=2,
        )
    lo_bin, hi_bin = int(occupied[0]), int(occupied[-1])
    lo = float(grid[max(lo_bin - 1, 0)])
    hi = float(grid[min(hi_bin, len(grid) - 1)])
    if hi <= lo:
        above = grid[grid > lo]
        hi = float(above[0]) if above.size else lo + 1.0
    return lo, hi


def threshold_for(sigma: float, delta_threshold: float, min_count: int = 2) -> float:
    """The threshold at which a value with true count ``min_count`` survives w.p. ``delta_threshold``."""
    if not 0.0 < delta_threshold < 1.0:
        raise ValueError("delta_threshold must be in (0, 1)")
    return float(min_count + sigma * norm.isf(delta_threshold))


def dp_categories(
    values: pd.Series | Sequence,
    sigma: float,
    threshold: float,
    rng: np.random.Generator,
    min_count: int = 2,
) -> list:
    """The values whose noisy count clears ``threshold`` (and whose true count is >= ``min_count``).

    Returned sorted by their text form (the order carries no count information). Missing values
    are not categories (they have their own code).
    """
    s = pd.Series(values).dropna()
    counts = s.astype(object).map(_canonical).value_counts()
    if counts.empty:
        return []
    noisy = counts.to_numpy(dtype=np.float64) + rng.normal(0.0, sigma, size=len(counts))
    keep = (noisy > threshold) & (counts.to_numpy() >= min_count)
    return sorted(counts.index[keep].tolist(), key=lambda v: (str(type(v)), str(v)))


def _canonical(value):
    """Numbers read as floats but holding integers become ints (so 3.0 and 3 are one category)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
