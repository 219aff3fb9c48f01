"""The exponential mechanism (Gumbel-max form), shared by MST, AIM and DP quantiles.

``exponential_mechanism(scores, epsilon, sensitivity)`` returns index ``k`` with probability
proportional to ``exp(epsilon * scores[k] / (2 * sensitivity))``. With ``scores`` of sensitivity
``Delta`` under add/remove-one this is epsilon-DP and epsilon-bounded-range, i.e. one
``ExponentialMechanismDpEvent(epsilon)`` (the event's temperature tau = 2 Delta / epsilon).
"""

from __future__ import annotations

import numpy as np


def exponential_mechanism(
    scores: np.ndarray,
    epsilon: float,
    sensitivity: float,
    rng: np.random.Generator,
) -> int:
    """Index drawn with probability proportional to ``exp(epsilon * score / (2 * sensitivity))``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError("scores must be a non-empty 1-D array")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not (epsilon > 0 and np.isfinite(epsilon)) or not (sensitivity > 0):
        raise ValueError("epsilon and sensitivity must be positive")
    logits = epsilon * scores / (2.0 * sensitivity)
    return int(np.argmax(logits + rng.gumbel(size=logits.shape)))
