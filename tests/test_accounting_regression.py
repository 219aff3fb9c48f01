"""Accounting figures against independent computations (reference figures at delta=1e-5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import dp_event, gaussian_mechanism

from dpsynth.accounting import ExponentialMechanismDpEvent, PureDpEvent, compute_charge, epsilon_by_accountant

DELTA = 1e-5


def cks_epsilon(rho: float, delta: float) -> float:
    """Independent rho-zCDP -> (eps, delta) (Canonne-Kamath-Steinke 2020, Prop. 12), fine alpha grid."""
    alphas = np.concatenate([np.linspace(1.001, 10, 20000), np.linspace(10, 5000, 200000)])
    eps = rho * alphas + (math.log(1 / delta) + (alphas - 1) * np.log1p(-1 / alphas) - np.log(alphas)) / (alphas - 1)
    return float(eps.min())


def subsampled_gaussian_rdp_epsilon(q: float, sigma: float, steps: int, delta: float) -> float:
    """Independent integer-order RDP of the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019,
    binomial expansion), composed ``steps`` times, converted with Balle et al. 2020 Thm 21."""
    best = math.inf
    for alpha in range(2, 129):
        k = np.arange(alpha + 1)
        log_terms = (
            np.array([math.lgamma(alpha + 1) - math.lgamma(i + 1) - math.lgamma(alpha - i + 1) for i in k])
            + (alpha - k) * math.log1p(-q)
            + k * math.log(q)
            + (k * k - k) / (2 * sigma**2)
        )
        m = log_terms.max()
        rdp = steps * (m + math.log(np.exp(log_terms - m).sum())) / (alpha - 1)
        eps = rdp + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    return best


def test_gaussian_pld_equals_analytic_gaussian():
    by = epsilon_by_accountant(dp_event.GaussianDpEvent(1.0), DELTA)
    analytic = gaussian_mechanism.get_epsilon_gaussian(1.0, DELTA)
    assert by["pld"] == pytest.approx(4.377, abs=2e-3)
    assert by["pld"] == pytest.approx(analytic, abs=1e-3)
    assert by["rdp"] == pytest.approx(cks_epsilon(0.5, DELTA), abs=2e-3)  # Gaussian sigma=1 is 0.5-zCDP
    assert compute_charge(dp_event.GaussianDpEvent(1.0), DELTA).epsilon == by["pld"]


def test_dpsgd_reference_case():
    q, sigma, steps = 256 / 60000, 1.1, 14062
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    by = epsilon_by_accountant(event, DELTA)
    assert by["pld"] == pytest.approx(2.38, abs=0.01)
    assert by["rdp"] == pytest.approx(2.60, abs=0.01)
    assert by["pld"] <= by["rdp"]
    independent = subsampled_gaussian_rdp_epsilon(q, sigma, steps, DELTA)
    # our grid includes fractional orders, so it can only be tighter, and not by much
    assert by["rdp"] <= independent + 1e-9
    assert by["rdp"] == pytest.approx(independent, rel=0.02)
    charge = compute_charge(event, DELTA)
    assert charge.epsilon == by["pld"] and charge.accountant == "pld"


def test_zcdp_conversion():
    by = epsilon_by_accountant(dp_event.ZCDpEvent(0.5), DELTA)
    assert set(by) == {"rdp"}  # PLD has no zCDP support: only RDP reports it
    assert by["rdp"] == pytest.approx(4.728, abs=2e-3)
    assert by["rdp"] == pytest.approx(cks_epsilon(0.5, DELTA), abs=1e-3)
    naive = 0.5 + 2 * math.sqrt(0.5 * math.log(1 / DELTA))
    assert by["rdp"] < naive


def test_exponential_mechanism_bounded_range():
    event = dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(1.0), 20)
    by = epsilon_by_accountant(event, DELTA)
    assert by["rdp"] == pytest.approx(12.30, abs=0.01)
    independent = cks_epsilon(20 / 8, DELTA)  # rho = count * eps^2 / 8
    # the accountant's coarser order grid can only be pessimistic, and only slightly
    assert independent - 1e-9 <= by["rdp"] <= independent + 5e-3
    assert by["pld"] <= 20 + 1e-9  # pure-DP composition never exceeds basic composition
    assert compute_charge(event, DELTA).epsilon == pytest.approx(12.30, abs=0.01)


def test_pure_dp_and_laplace():
    assert epsilon_by_accountant(PureDpEvent(1.0), DELTA)["pld"] <= 1.0 + 1e-9
    assert epsilon_by_accountant(PureDpEvent(1.0), 0.0)["basic"] == 1.0  # the bound that works at delta=0
    lap = epsilon_by_accountant(dp_event.LaplaceDpEvent(1.0), 1e-9)
    assert lap["pld"] == pytest.approx(1.0, abs=1e-3)
    assert lap["rdp"] >= lap["pld"]


def test_approximate_dp_black_box():
    from dpsynth.accounting import ApproxDpEvent

    assert compute_charge(ApproxDpEvent(0.1, 1e-7), 1e-7).epsilon == 0.1  # exact, by basic composition
    # below its own delta the black box has no finite bound
    assert math.isinf(compute_charge(ApproxDpEvent(0.1, 1e-7), 1e-8).epsilon)
    # composed with a Gaussian, PLD (worst-case (eps, delta) PLD, Kairouz et al.) beats basic composition
    mixed = dp_event.ComposedDpEvent([ApproxDpEvent(0.5, 1e-7), dp_event.GaussianDpEvent(5.0)])
    charge = compute_charge(mixed, 1e-6)
    assert charge.by_accountant["pld"] <= 0.5 + epsilon_by_accountant(dp_event.GaussianDpEvent(5.0), 1e-6 - 1e-7)["pld"]
    assert "rdp" not in charge.by_accountant  # RDP cannot represent delta > 0 black boxes


def test_non_private_event_is_infinite():
    assert math.isinf(compute_charge(dp_event.NonPrivateDpEvent(), DELTA).epsilon)


def test_coarser_pld_grid_is_pessimistic():
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.01, dp_event.GaussianDpEvent(1.0)), 1000)
    fine = epsilon_by_accountant(event, DELTA, ["pld"])["pld"]
    coarse = epsilon_by_accountant(event, DELTA, ["pld"], fast=True)["pld"]
    assert coarse >= fine
    assert fine == pytest.approx(1.828, abs=0.01)


def test_stagewise_basic_composition_is_a_candidate():
    from dpsynth.accounting import Stage, composed_event

    stages = [Stage("a", dp_event.ZCDpEvent(0.01), 5e-6), Stage("b", PureDpEvent(0.2), 5e-6)]
    charge = compute_charge(composed_event(stages), 1e-5, stages)
    separate = epsilon_by_accountant(stages[0].event, 5e-6)["rdp"] + min(epsilon_by_accountant(stages[1].event, 5e-6).values())
    assert charge.by_accountant["stages"] == pytest.approx(separate)
    assert charge.epsilon == min(charge.by_accountant.values())
    with pytest.raises(ValueError):
        compute_charge(composed_event(stages), 1e-6, stages)  # stage deltas exceed the call's delta
