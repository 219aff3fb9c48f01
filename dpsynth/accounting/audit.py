"""Black-box empirical privacy audits of noise primitives (Jagielski et al. 2020; Nasr et al. 2021).

Run a mechanism many times on two neighbouring inputs, threshold its output, and turn the
Clopper-Pearson confidence bounds on the two acceptance rates into a **lower bound** on epsilon:
``eps_lb = max_t ln((TPR_lb(t) - delta) / FPR_ub(t))`` over thresholds ``t`` fixed in advance, with
a Bonferroni correction over the thresholds (and the two directions). A valid implementation's
lower bound stays below its claimed epsilon (with probability >= 1 - alpha); a bug that adds too
little noise pushes it above the claim.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - alpha) Clopper-Pearson interval for a binomial proportion."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(stats.beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return lo, hi


def epsilon_lower_bound(
    scores_in: np.ndarray,
    scores_out: np.ndarray,
    thresholds: Sequence[float],
    delta: float = 0.0,
    alpha: float = 0.05,
) -> float:
    """Empirical epsilon lower bound from outputs on neighbouring inputs D (``in``) and D' (``out``).

    For each pre-chosen threshold ``t`` the test "output > t" has TPR on D and FPR on D'; by DP,
    ``TPR <= e^eps FPR + delta`` and symmetrically for the complement. Clopper-Pearson bounds at
    level ``alpha / (2 * len(thresholds))`` (one-sided each, Bonferroni over thresholds and both
    directions) make the result a valid lower bound with probability >= 1 - alpha.
    """
    scores_in = np.asarray(scores_in, dtype=float)
    scores_out = np.asarray(scores_out, dtype=float)
    k = 2 * len(thresholds)
    level = alpha / k
    best = 0.0
    for t in thresholds:
        a = int(np.sum(scores_in > t))
        b = int(np.sum(scores_out > t))
        n_in, n_out = len(scores_in), len(scores_out)
        for hits_p, n_p, hits_q, n_q in ((a, n_in, b, n_out), (n_out - b, n_out, n_in - a, n_in)):
            p_lo, _ = clopper_pearson(hits_p, n_p, 2 * level)  # one-sided lower at `level`
            _, q_hi = clopper_pearson(hits_q, n_q, 2 * level)  # one-sided upper at `level`
            if p_lo - delta > 0 and q_hi > 0:
                best = max(best, math.log((p_lo - delta) / q_hi))
    return best
