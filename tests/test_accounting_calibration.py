"""Calibrated parameters re-check at or below the target, and are close to tight."""

from __future__ import annotations

import pytest
from dp_accounting import dp_event, gaussian_mechanism

from dpsynth.accounting import (
    ExponentialMechanismDpEvent,
    compute_charge,
    dpsgd_noise_multiplier,
    exponential_epsilon_per_step,
    gaussian_noise_multiplier,
    zcdp_rho,
)


@pytest.mark.parametrize("eps,delta,count", [(1.0, 1e-5, 1), (0.3, 1e-6, 1), (3.0, 1e-6, 10)])
def test_gaussian_noise_multiplier(eps, delta, count):
    sigma = gaussian_noise_multiplier(eps, delta, count)
    event = lambda s: dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(s), count)
    assert compute_charge(event(sigma), delta).epsilon <= eps
    assert compute_charge(event(sigma * 0.98), delta).epsilon > eps  # not wastefully noisy
    if count == 1:  # independent: the analytic Gaussian mechanism (Balle & Wang 2018)
        assert sigma == pytest.approx(gaussian_mechanism.get_sigma_gaussian(eps, delta), rel=5e-3)


def test_dpsgd_noise_multiplier_reference_case():
    q, steps = 256 / 60000, 14062
    sigma = dpsgd_noise_multiplier(3.0, 1e-5, q, steps)
    event = lambda s: dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(s)), steps)
    assert compute_charge(event(sigma), 1e-5).epsilon <= 3.0
    assert sigma == pytest.approx(0.9684, rel=0.01)  # reference PLD calibration


@pytest.mark.parametrize("eps,delta", [(1.0, 1e-6), (0.3, 1e-9), (10.0, 1e-5)])
def test_zcdp_rho(eps, delta):
    rho = zcdp_rho(eps, delta)
    assert compute_charge(dp_event.ZCDpEvent(rho), delta).epsilon <= eps
    assert compute_charge(dp_event.ZCDpEvent(rho * 1.01), delta).epsilon > eps


def test_exponential_epsilon_per_step():
    e0 = exponential_epsilon_per_step(3.0, 1e-6, 64)
    event = lambda e: dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(e), 64)
    assert compute_charge(event(e0), 1e-6).epsilon <= 3.0
    assert compute_charge(event(e0 * 1.01), 1e-6).epsilon > 3.0


def test_exponential_calibration_at_delta_zero_is_pure_composition():
    # at delta = 0 only basic composition of the pure-DP steps certifies the call
    e0 = exponential_epsilon_per_step(2.0, 0.0, 10)
    assert e0 == pytest.approx(0.2, rel=1e-3) and e0 * 10 <= 2.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True])
def test_calibration_rejects_bad_targets(bad):
    with pytest.raises(ValueError):
        gaussian_noise_multiplier(bad, 1e-5)
    with pytest.raises(ValueError):
        zcdp_rho(bad, 1e-5)
