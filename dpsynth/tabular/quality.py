"""Utility metrics: average total-variation distance over k-way marginals (the AIM/MST protocol).

**Not differentially private.** These functions read the real table; use them for evaluation
and benchmarks, or to show the data owner a summary on their own console. Nothing computed here
is written to a release, its ledger or its card.

Both tables are discretised with the same public :class:`TableEncoder` (the release's public
domain), so the metric compares the distributions the methods model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from dpsynth.tabular.encoding import TableEncoder


def _marginal(codes: np.ndarray, sizes: Sequence[int], idx: Sequence[int]) -> np.ndarray:
    shape = tuple(int(sizes[i]) for i in idx)
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def average_tvd(
    real_codes: np.ndarray,
    synth_codes: np.ndarray,
    sizes: Sequence[int],
    k: int,
    max_marginals: int | None = None,
    rng: np.random.Generator | None = None,
) -> float:
    """Mean over all ``k``-column subsets of ``0.5 * ||p_real - p_synth||_1``.

    ``max_marginals`` caps the number of subsets (a random, seeded subset) for wide tables.
    """
    d = real_codes.shape[1]
    if d < k:
        return float("nan")
    subsets = list(itertools.combinations(range(d), k))
    if max_marginals is not None and len(subsets) > max_marginals:
        rng = rng or np.random.default_rng(0)
        pick = rng.choice(len(subsets), size=max_marginals, replace=False)
        subsets = [subsets[i] for i in sorted(pick)]
    tvds = [
        0.5 * np.abs(_marginal(real_codes, sizes, s) - _marginal(synth_codes, sizes, s)).sum() for s in subsets
    ]
    return float(np.mean(tvds))


def tvd_summary(
    real: pd.DataFrame, synthetic: pd.DataFrame, encoder: TableEncoder, orders: Sequence[int] = (1, 2, 3),
    max_marginals: int | None = 500,
) -> dict[str, float]:
    """``{"tvd_1way": ..., "tvd_2way": ..., ...}`` on the public encoded domain (not DP)."""
    real_codes = encoder.encode(real)
    synth_codes = encoder.encode(synthetic)
    out = {}
    for k in orders:
        value = average_tvd(real_codes, synth_codes, encoder.sizes, k, max_marginals=max_marginals)
        if not math.isnan(value):
            out[f"tvd_{k}way"] = value
    return out


def per_column_tvd(real: pd.DataFrame, synthetic: pd.DataFrame, encoder: TableEncoder) -> dict[str, float]:
    """``{column: 1-way TVD}`` on the public encoded domain (not DP)."""
    real_codes = encoder.encode(real)
    synth_codes = encoder.encode(synthetic)
    out = {}
    for j, name in enumerate(encoder.columns):
        out[name] = average_tvd(real_codes[:, [j]], synth_codes[:, [j]], [encoder.sizes[j]], 1)
    return out
