"""Hybrid real + synthetic training sets (the "keep real data, add a measured share" recipe).

``ratio`` is always the **synthetic share of the output**: ``n_synth / (n_real + n_synth)``.
All real rows are kept; ``round(ratio / (1 - ratio) * n_real)`` synthetic rows are added.

Privacy note: a hybrid contains the real rows verbatim, so it is *not* a DP release. Its card
records ``synthetic_ratio`` and states that the real part carries no DP guarantee; only the
synthetic part is covered by the synthetic data's ledger.
"""

from __future__ import annotations

import math
from typing import Sequence, TypeVar

import numpy as np
import pandas as pd

from dpsynth.evaluate.errors import EvaluationInputError

T = TypeVar("T")


def validate_ratio(ratio: float) -> float:
    """Return ``ratio`` as a float in [0, 1), raising ``ValueError`` otherwise."""
    try:
        value = float(ratio)
    except (TypeError, ValueError) as exc:
        raise EvaluationInputError(f"ratio must be a number in [0, 1), got {ratio!r}") from exc
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise EvaluationInputError(f"ratio must be in [0, 1) (the synthetic share of the output), got {ratio!r}")
    return value


def synthetic_count(n_real: int, ratio: float) -> int:
    """Number of synthetic rows to add to ``n_real`` real rows so that their share is ``ratio``."""
    ratio = validate_ratio(ratio)
    return int(round(ratio / (1.0 - ratio) * n_real))


def _choose(n_available: int, n_needed: int, replace: bool, rng: np.random.Generator) -> np.ndarray:
    if n_needed > n_available and not replace:
        raise EvaluationInputError(f"need {n_needed} synthetic records for this ratio but only {n_available} "
                                   "are available; lower --ratio or generate more synthetic data")
    if n_available == 0 and n_needed > 0:
        raise EvaluationInputError("the synthetic data is empty")
    return rng.choice(n_available, size=n_needed, replace=replace and n_needed > n_available)


def mix_frames(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    ratio: float,
    seed: int | None = None,
    replace: bool = False,
    source_column: str | None = None,
) -> pd.DataFrame:
    """Keep every real row, add synthetic rows so they make up ``ratio`` of the result, shuffle.

    Columns must match (synthetic columns are reordered to the real order). With
    ``source_column``, a column marking each row ``"real"``/``"synthetic"`` is added.
    """
    if len(real) == 0:
        raise EvaluationInputError("the real table is empty")
    if set(real.columns) != set(synthetic.columns):
        raise EvaluationInputError(f"column mismatch between real {list(real.columns)} and "
                                   f"synthetic {list(synthetic.columns)}")
    rng = np.random.default_rng(seed)
    picks = _choose(len(synthetic), synthetic_count(len(real), ratio), replace, rng)
    parts = [real.assign(**{source_column: "real"}) if source_column else real,
             synthetic.iloc[picks][list(real.columns)]]
    if source_column:
        parts[1] = parts[1].assign(**{source_column: "synthetic"})
    hybrid = pd.concat(parts, ignore_index=True)
    order = rng.permutation(len(hybrid))
    return hybrid.iloc[order].reset_index(drop=True)


def mix_records(
    real: Sequence[T],
    synthetic: Sequence[T],
    ratio: float,
    seed: int | None = None,
    replace: bool = False,
) -> list[T]:
    """List version of :func:`mix_frames` (texts or JSON records)."""
    if len(real) == 0:
        raise EvaluationInputError("the real data is empty")
    rng = np.random.default_rng(seed)
    picks = _choose(len(synthetic), synthetic_count(len(real), ratio), replace, rng)
    hybrid = list(real) + [synthetic[int(i)] for i in picks]
    return [hybrid[int(i)] for i in rng.permutation(len(hybrid))]
