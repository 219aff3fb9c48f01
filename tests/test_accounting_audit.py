"""Empirical audits of the shipped noise primitives (black-box, Clopper-Pearson, thresholds fixed in advance)."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.accounting import compute_charge, gaussian_noise_multiplier
from dpsynth.accounting.audit import clopper_pearson, epsilon_lower_bound
from dpsynth.accounting.noise import gaussian_mechanism, laplace_mechanism

N = 200_000
DELTA = 1e-5
ALPHA = 0.01  # the audit's own error probability (Bonferroni-corrected over its thresholds)


def rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Seeded generators so the statistical assertions are reproducible (the library itself seeds
    privacy noise from the OS, never from a user seed)."""
    return np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])


def test_clopper_pearson_matches_known_values():
    lo, hi = clopper_pearson(5, 10, 0.05)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)
    assert clopper_pearson(0, 10, 0.05)[0] == 0.0 and clopper_pearson(10, 10, 0.05)[1] == 1.0


@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0])
def test_laplace_audit_is_tight_and_below_claim(eps):
    r1, r2 = rngs(int(eps * 10))
    a, event = laplace_mechanism(np.ones(N), 1.0, eps, rng=r1)
    b, _ = laplace_mechanism(np.zeros(N), 1.0, eps, rng=r2)
    claimed = compute_charge(event, 1e-9).epsilon
    assert claimed == pytest.approx(eps, rel=1e-3)
    lb = epsilon_lower_bound(a, b, thresholds=[0.5, 1.0, 1.5, 2.0], delta=1e-9, alpha=ALPHA)
    assert lb <= claimed
    assert lb >= 0.8 * eps  # the audit has power: it is nearly tight for Laplace


def test_laplace_with_halved_noise_is_caught():
    # a buggy build that uses half the noise scale but claims epsilon=1
    r1, r2 = rngs(100)
    a, _ = laplace_mechanism(np.ones(N), 0.5, 1.0, rng=r1)
    b, _ = laplace_mechanism(np.zeros(N), 0.5, 1.0, rng=r2)
    assert epsilon_lower_bound(a, b, thresholds=[0.5, 1.0, 1.5, 2.0], alpha=ALPHA) > 1.0


def test_gaussian_audit_below_claim_and_quartered_noise_caught():
    sigma = gaussian_noise_multiplier(1.0, DELTA)
    thresholds = [sigma * k for k in (0.5, 1.0, 1.5, 2.0)]
    r1, r2 = rngs(200)
    a, event = gaussian_mechanism(np.ones(N), 1.0, sigma, rng=r1)
    b, _ = gaussian_mechanism(np.zeros(N), 1.0, sigma, rng=r2)
    claimed = compute_charge(event, DELTA).epsilon
    assert claimed <= 1.0
    assert epsilon_lower_bound(a, b, thresholds, delta=DELTA, alpha=ALPHA) <= claimed
    a, _ = gaussian_mechanism(np.ones(N), 1.0, sigma / 4, rng=r1)
    b, _ = gaussian_mechanism(np.zeros(N), 1.0, sigma / 4, rng=r2)
    assert epsilon_lower_bound(a, b, thresholds, delta=DELTA, alpha=ALPHA) > claimed


def test_noise_has_the_stated_distribution():
    r1, r2 = rngs(300)
    noisy, _ = gaussian_mechanism(np.zeros(N), 2.0, 1.5, rng=r1)
    assert np.std(noisy) == pytest.approx(3.0, rel=0.01)
    assert abs(np.mean(noisy)) < 5 * 3.0 / np.sqrt(N)
    noisy, _ = laplace_mechanism(np.zeros(N), 1.0, 0.5, rng=r2)
    assert np.mean(np.abs(noisy)) == pytest.approx(2.0, rel=0.01)  # E|Laplace(b)| = b


def test_primitives_reject_bad_parameters():
    with pytest.raises(ValueError):
        gaussian_mechanism(np.zeros(3), 1.0, 0.0)
    with pytest.raises(ValueError):
        laplace_mechanism(np.zeros(3), float("nan"), 1.0)
