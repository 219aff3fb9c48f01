"""DP mechanisms that release the parts of the domain the public metadata does not give.

Privacy unit: one row; add-or-remove-one neighbours. Each function is a pure mechanism; its event
is stated next to it and :mod:`dpsynth.tabular.plan` charges it to the ledger before it runs.

* :func:`dp_row_count` -- Gaussian mechanism on the row count (sensitivity 1):
  ``GaussianDpEvent(sigma)``.
* :func:`dp_quantile` / :func:`dp_bounds` -- exponential mechanism over a **public** candidate
  grid with utility ``-|#{x <= c} - q m|`` (``m`` = number of non-missing values). Adding or
  removing a row moves ``#{x <= c}`` by at most 1 and ``q m`` by ``q <= 1`` in the same direction,
  so the sensitivity is 1 and each quantile is one ``ExponentialMechanismDpEvent(epsilon)``.
  Values outside the released bounds are clipped later, never revealed.
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
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from dpsynth.tabular.methods.exponential import exponential_mechanism


def dp_row_count(n: int, sigma: float, rng: np.random.Generator) -> int:
    """Noisy row count ``round(n + N(0, sigma^2))``, at least 2. Event: ``GaussianDpEvent(sigma)``."""
    return max(2, int(round(n + rng.normal(0.0, sigma))))


def numeric_candidates() -> np.ndarray:
    """The public candidate grid for numeric bounds: 0 and +-10^(k/16), k = -48..192 (1e-3..1e12)."""
    mags = 10.0 ** (np.arange(-48, 193) / 16.0)
    return np.concatenate([-mags[::-1], [0.0], mags])


def datetime_candidates() -> np.ndarray:
    """The public candidate grid for datetime bounds: month starts 1900-2100, in epoch seconds."""
    stamps = pd.date_range("1900-01-01", "2100-01-01", freq="MS")
    return stamps.asi8.astype(np.float64) / 1e9


def dp_quantile(
    values: np.ndarray, q: float, candidates: np.ndarray, epsilon: float, rng: np.random.Generator
) -> float:
    """An epsilon-DP ``q``-quantile chosen from the public sorted ``candidates`` (EM, sensitivity 1)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be in [0, 1]")
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[~np.isnan(x)]
    ranks = np.searchsorted(x, candidates, side="right")
    scores = -np.abs(ranks - q * x.size)
    return float(candidates[exponential_mechanism(scores, epsilon, 1.0, rng)])


def dp_bounds(
    values: np.ndarray,
    epsilon_per_quantile: float,
    rng: np.random.Generator,
    candidates: np.ndarray | None = None,
    q_low: float = 0.01,
    q_high: float = 0.99,
) -> tuple[float, float]:
    """DP (lower, upper) from two DP quantiles; two ``ExponentialMechanismDpEvent`` s.

    If the two picks coincide or cross, the upper bound becomes the next larger candidate
    (post-processing), so ``lower < upper`` always holds.
    """
    grid = numeric_candidates() if candidates is None else np.asarray(candidates, dtype=np.float64)
    lo = dp_quantile(values, q_low, grid, epsilon_per_quantile, rng)
    hi = dp_quantile(values, q_high, grid, epsilon_per_quantile, rng)
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
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
