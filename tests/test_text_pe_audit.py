"""Empirical privacy audit of Private Evolution's DP step: the vote histogram plus Gaussian noise.

Black box on the library's own functions (``nearest_candidates`` -> ``vote_histogram`` ->
``noisy_histogram`` with the plan's ``noise_std``): neighbouring private sets D' and D = D' + one
text, fixed public candidates, many independent runs of the released histogram. The auditor
watches the noisy count of the candidate the added text votes for (for a Gaussian mechanism
whose neighbours differ in one coordinate, thresholding that coordinate is the most powerful
test), and over ``T`` rounds the sum of that count's ``T`` releases. Clopper-Pearson bounds with
thresholds fixed in advance (:func:`dpsynth.accounting.audit.epsilon_lower_bound`) give an epsilon
lower bound that holds with probability >= 1 - ALPHA; it must stay at or below the epsilon that
dp-accounting charges for the plan, and a build with a quarter of the noise, or one that counts a
vote more than once, must be caught.

What this does not show: that the bound is tight for PE's adaptive rounds (here the candidates
are the same in every round, one instance of the adaptive composition), or anything about the
floating-point noise sampler (docs/text.md, "Side channels").
"""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.accounting import compute_charge
from dpsynth.accounting.audit import epsilon_lower_bound
from dpsynth.text.pe.histogram import nearest_candidates, noisy_histogram, vote_histogram
from dpsynth.text.pe.privacy import calibrate_pe

RUNS = 200_000
DELTA = 1e-5
ALPHA = 0.01


def _neighbours(seed: int = 0):
    """Public candidates, private set D' (``out``) and D = D' + one text (``in``), in two labels."""
    rng = np.random.default_rng([seed, 7])
    candidates = rng.normal(size=(6, 8))
    candidate_groups = np.array([0, 0, 0, 1, 1, 1])
    private_out = rng.normal(size=(40, 8))
    groups_out = rng.integers(0, 2, size=40)
    added = candidates[1] + 0.01 * rng.normal(size=8)  # a text right next to candidate 1 (label 0)
    private_in = np.vstack([private_out, added])
    groups_in = np.append(groups_out, 0)
    return candidates, candidate_groups, (private_in, groups_in), (private_out, groups_out)


def _released(private, candidates, candidate_groups, noise_std, rounds, rng, vote_weight=1.0):
    """``RUNS`` independent releases of ``rounds`` noisy histograms, through the library's functions."""
    nearest = nearest_candidates(private[0], private[1], candidates, candidate_groups)
    counts = vote_weight * vote_histogram(nearest, len(candidates))
    return [noisy_histogram(np.tile(counts, (RUNS, 1)), noise_std, rng) for _ in range(rounds)]


def _audit(epsilon: float, rounds: int, noise_scale: float = 1.0, vote_weight: float = 1.0, seed: int = 0):
    plan = calibrate_pe(epsilon, DELTA, rounds)
    claimed = compute_charge(plan.event, DELTA).epsilon
    candidates, candidate_groups, d_in, d_out = _neighbours(seed)
    watched = int(nearest_candidates(d_in[0][-1:], d_in[1][-1:], candidates, candidate_groups)[0])
    assert watched == 1
    rng = np.random.default_rng([seed, 11])
    noise_std = plan.noise_std * noise_scale
    scores = []
    for private in (d_in, d_out):
        released = _released(private, candidates, candidate_groups, noise_std, rounds, rng, vote_weight)
        scores.append(sum(r[:, watched] for r in released))  # the sum of the watched count over the rounds
    base = rounds * vote_weight * vote_histogram(
        nearest_candidates(d_out[0], d_out[1], candidates, candidate_groups), len(candidates)
    )[watched]
    spread = plan.noise_std * np.sqrt(rounds)  # fixed in advance from the claimed plan, not from the samples
    thresholds = [base + spread * k for k in (0.5, 1.0, 1.5, 2.0, 2.5)]
    return epsilon_lower_bound(scores[0], scores[1], thresholds, delta=DELTA, alpha=ALPHA), claimed


def test_the_added_text_changes_one_count_by_one():
    candidates, candidate_groups, d_in, d_out = _neighbours()
    hist_in = vote_histogram(nearest_candidates(*d_in, candidates, candidate_groups), 6)
    hist_out = vote_histogram(nearest_candidates(*d_out, candidates, candidate_groups), 6)
    assert np.array_equal(hist_in - hist_out, np.eye(6)[1])


@pytest.mark.parametrize("epsilon, rounds", [(1.0, 1), (2.0, 3)])
def test_audit_of_the_vote_histogram_stays_below_the_charged_epsilon(epsilon, rounds):
    bound, claimed = _audit(epsilon, rounds)
    assert claimed <= epsilon * (1 + 1e-6)
    assert bound <= claimed, (bound, claimed)
    assert bound > 0.3 * claimed, (bound, claimed)  # the audit has power: it sees most of the claim


def test_a_build_with_a_quarter_of_the_noise_is_caught():
    bound, claimed = _audit(1.0, 1, noise_scale=0.25)
    assert bound > claimed, (bound, claimed)


def test_a_build_that_counts_each_vote_twice_is_caught():
    bound, claimed = _audit(1.0, 1, vote_weight=2.0)  # sensitivity 2 under a claim for 1
    assert bound > claimed, (bound, claimed)
