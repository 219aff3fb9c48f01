"""Accounting of the text mechanism checked against an independent zCDP -> (eps, delta) computation."""

from __future__ import annotations

import math

import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from scipy.optimize import minimize_scalar

from dpsynth.accounting.accountants import compute_charge
from dpsynth.accounting.events import ExponentialMechanismDpEvent
from dpsynth.text.privacy import (
    calibrate_text_mechanism,
    clip_for_token_epsilon,
    per_token_epsilon,
    text_generation_event,
    zcdp_rho_total,
)


def cks_epsilon(rho: float, delta: float) -> float:
    """Independent rho-zCDP -> (eps, delta): Canonne-Kamath-Steinke 2020, minimised over alpha.

    eps = min_{alpha > 1} alpha*rho + (log(1/delta) - log(alpha)) / (alpha - 1) + log(1 - 1/alpha)
    """

    def eps_at(log_alpha_minus_1: float) -> float:
        alpha = 1.0 + math.exp(log_alpha_minus_1)
        return alpha * rho + (math.log(1 / delta) - math.log(alpha)) / (alpha - 1) + math.log1p(-1 / alpha)

    res = minimize_scalar(eps_at, bounds=(-12, 12), method="bounded", options={"xatol": 1e-10})
    return float(res.fun)


@pytest.mark.parametrize(
    "epsilon,delta,group_size,tokens,temperature",
    [(3.0, 1e-6, 8, 64, 1.0), (1.0, 1e-5, 4, 32, 1.2), (8.0, 1e-6, 16, 100, 0.8)],
)
def test_ledger_epsilon_matches_independent_zcdp_computation(epsilon, delta, group_size, tokens, temperature):
    plan = calibrate_text_mechanism(epsilon, delta, group_size, tokens, temperature)
    # rho by our own formula: T C^2 / (2 B^2 tau^2)
    rho = tokens * plan.clip**2 / (2 * group_size**2 * temperature**2)
    assert plan.rho == pytest.approx(rho, rel=1e-12)
    assert zcdp_rho_total(plan.clip, group_size, temperature, tokens) == pytest.approx(rho, rel=1e-12)
    independent = cks_epsilon(rho, delta)
    charged = compute_charge(plan.event, delta).epsilon
    # the accountant evaluates CKS on a grid of orders: never below the continuous optimum, barely above
    assert independent <= charged + 1e-9
    assert charged <= independent * 1.01
    # calibration spends (almost) all of the budget and never more
    assert charged <= epsilon
    assert charged >= 0.98 * epsilon
    # dp-accounting's own ZCDpEvent gives the same number as our event
    stock = rdp_privacy_accountant.RdpAccountant()
    stock.compose(dp_event.ZCDpEvent(rho))
    assert stock.get_epsilon(delta) == pytest.approx(charged, rel=2e-3)


def test_event_is_t_fold_exponential_mechanism_with_2c_over_b_tau():
    event = text_generation_event(0.6, 8, 1.5, 50)
    assert isinstance(event, dp_event.SelfComposedDpEvent)
    assert event.count == 50
    assert isinstance(event.event, ExponentialMechanismDpEvent)
    assert event.event.epsilon == pytest.approx(2 * 0.6 / (8 * 1.5))


def test_calibrated_clip_inverts_per_token_epsilon_and_never_exceeds_it():
    for eps_tok in [1e-3, 0.1, 0.37, 2.0]:
        clip = clip_for_token_epsilon(eps_tok, 7, 1.3)
        assert per_token_epsilon(clip, 7, 1.3) <= eps_tok
        assert clip == pytest.approx(eps_tok * 7 * 1.3 / 2, rel=1e-12)


def test_clip_grows_with_budget_group_size_and_shrinks_with_tokens():
    base = calibrate_text_mechanism(3.0, 1e-6, 8, 64, 1.0).clip
    assert calibrate_text_mechanism(6.0, 1e-6, 8, 64, 1.0).clip > base
    assert calibrate_text_mechanism(3.0, 1e-6, 16, 64, 1.0).clip == pytest.approx(2 * base, rel=1e-3)
    assert calibrate_text_mechanism(3.0, 1e-6, 8, 128, 1.0).clip < base


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-6, float("nan")])
def test_delta_outside_open_unit_interval_is_refused_with_a_clear_message(delta):
    with pytest.raises(ValueError, match="delta"):
        calibrate_text_mechanism(2.0, delta, 8, 20, 1.0)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True])
def test_bad_public_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        calibrate_text_mechanism(3.0, 1e-6, bad, 64, 1.0)
    with pytest.raises(ValueError):
        calibrate_text_mechanism(3.0, 1e-6, 8, 64, bad)
    with pytest.raises(ValueError):
        calibrate_text_mechanism(bad, 1e-6, 8, 64, 1.0)
