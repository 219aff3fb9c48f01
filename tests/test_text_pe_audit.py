"""Empirical privacy audit of Private Evolution's DP step: the vote histogram plus Gaussian noise.

A white-box audit of the library's primitives (``nearest_candidates`` -> ``vote_histogram`` ->
``noisy_histogram`` with the plan's ``noise_std``), assembled here as the loop assembles them
(that the loop passes the plan's ``noise_std`` and fresh noise every round is tested below, with a
spy in :func:`~dpsynth.text.pe.evolution.run_private_evolution`): neighbouring private sets D' and D = D' + one
text, fixed public candidates, many independent runs of the released histogram. The auditor
watches the noisy count of the candidate the added text votes for (for a Gaussian mechanism
whose neighbours differ in one coordinate, thresholding that coordinate is the most powerful
test), and over ``T`` rounds the sum of that count's ``T`` releases. Clopper-Pearson bounds with
thresholds fixed in advance (:func:`dpsynth.accounting.audit.epsilon_lower_bound`) give an epsilon
lower bound that holds with probability >= 1 - ALPHA; it must stay at or below the epsilon that
dp-accounting charges for the plan. Two bugs are injected by the test (a quarter of the noise,
votes counted twice) to show that the audit has the power to catch them; they are not mutations of
the library's code.

What this does not show: that the bound is tight for PE's adaptive rounds (here the candidates
are the same in every round, one instance of the adaptive composition), or anything about the
floating-point noise sampler (docs/text.md, "Side channels").
"""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.accounting import compute_charge
from dpsynth.accounting.audit import epsilon_lower_bound
from dpsynth.text.pe.histogram import nearest_candidates, noisy_histogram, threshold_counts, vote_histogram
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


@pytest.mark.parametrize("space", ["centred", "raw"])
def test_adding_a_text_never_moves_another_texts_vote(space):
    """Sensitivity 1 needs every other text's vote to ignore the added text. Rows halfway between
    two candidates (in raw space, so close calls, not exact ties in the vote space) flip when the
    vote space depends on the private texts: centring on their mean, or half on it, was tried and
    fails here; a centre moved only slightly by them may pass. An outlying added text moves such
    a mean the most."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        candidates = rng.normal(size=(6, 8))
        candidate_groups = np.array([0, 0, 0, 1, 1, 1])
        pairs = rng.integers(0, 3, size=(30, 2)) + 3 * rng.integers(0, 2, size=(30, 1))
        private = (candidates[pairs[:, 0]] + candidates[pairs[:, 1]]) / 2 + 1e-6 * rng.normal(size=(30, 8))
        groups = pairs[:, 0] // 3
        before = nearest_candidates(private, groups, candidates, candidate_groups, space)
        added = 50.0 * rng.normal(size=(1, 8))
        after = nearest_candidates(np.vstack([private, added]), np.append(groups, rng.integers(0, 2)), candidates,
                                   candidate_groups, space)
        assert np.array_equal(after[:30], before)


def test_the_loop_adds_fresh_noise_with_the_plans_std_in_every_round(monkeypatch):
    """The audit above assembles the step itself; this checks that the loop does the same: one call
    of ``noisy_histogram`` per round, with the plan's ``noise_std``, on the exact vote counts, new
    noise each time, and that both what ``observe`` sees and what the selections (proportional
    draws in rounds 1..T-1, the final top-N) choose from is the thresholded noisy release."""
    import dpsynth.text.pe.evolution as evolution
    from dpsynth.text.pe.evolution import run_private_evolution

    calls = []
    real = evolution.noisy_histogram

    def spy(counts, noise_std, rng):
        noisy = real(counts, noise_std, rng)
        calls.append((np.array(counts), float(noise_std), noisy - counts, noisy.copy()))
        return noisy

    weights_seen = []
    selected_from = []

    def selection_spy(real_selection):
        def select(weights, *args, **kwargs):
            selected_from.append((real_selection.__name__, np.array(weights)))
            return real_selection(weights, *args, **kwargs)
        return select

    monkeypatch.setattr(evolution, "noisy_histogram", spy)
    monkeypatch.setattr(evolution, "select_proportional", selection_spy(evolution.select_proportional))
    monkeypatch.setattr(evolution, "select_top", selection_spy(evolution.select_top))

    def embed(texts):
        return np.array([[len(t), t.count("a") + 1.0, 1.0] for t in texts], dtype=float)

    pool = ["a", "aa b", "c", "abc a", "aaaa", "b b b"]
    counter = iter(range(10**6))
    plan = calibrate_pe(3.0, 1e-6, 4)
    private = ["aa", "a b c", "aaa", "bb", "a"] * 4
    run_private_evolution(
        private_embeddings=embed(private), private_groups=np.zeros(len(private), dtype=np.int64), labels=[None],
        outputs_per_label={0: 3}, plan=plan, variations=2, instruction="Write.",
        generate=lambda messages, description="", batch_keys=None: [pool[next(counter) % 6] for _ in messages],
        embed=embed, rng=np.random.default_rng(0),
        observe=lambda _t, _population, _groups, weights: weights_seen.append(weights),
    )
    assert len(calls) == plan.iterations
    assert all(std == plan.noise_std for _, std, _, _ in calls)
    assert all(counts.sum() == len(private) and np.all(counts == np.round(counts)) for counts, _, _, _ in calls)
    # what the loop selects from is the thresholded noisy release, not the exact counts
    assert len(weights_seen) == plan.iterations
    for (_, _, _, noisy), weights in zip(calls, weights_seen):
        assert np.array_equal(weights, threshold_counts(noisy, plan.threshold))
    assert [name for name, _ in selected_from] == ["select_proportional"] * (plan.iterations - 1) + ["select_top"]
    for (_, _, _, noisy), (_, weights) in zip(calls, selected_from):
        assert np.array_equal(weights, threshold_counts(noisy, plan.threshold))
    noises = [noise for _, _, noise, _ in calls]
    assert all(not np.allclose(a[: len(b)], b[: len(a)]) for i, a in enumerate(noises) for b in noises[i + 1:])
