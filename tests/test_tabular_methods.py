"""Mechanism-level tests for the marginal methods (MST, AIM, independent) and their helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import dp_event

from dpsynth.accounting import epsilon_by_accountant
from dpsynth.tabular.methods import get_method, resolve_method_name, UnknownMethodError, AUTO_AIM_MAX_COLUMNS
from dpsynth.tabular.methods.aim import (
    AIMMethod,
    FilterExhaustedError,
    ZcdpFilter,
    candidate_weights,
    run_aim,
    workload_cliques,
)
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.tabular.methods.exponential import exponential_mechanism
from dpsynth.tabular.methods.independent import IndependentMethod, noisy_histogram_probabilities
from dpsynth.tabular.methods.mst import MSTMethod, mst_event, mst_parameters
from dpsynth.tabular.methods._pgm import marginal, measure


def correlated_codes(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, EncodedDomain]:
    """a -> b strongly dependent, c independent, e depends on c."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, n)
    b = np.where(rng.random(n) < 0.85, a, rng.integers(0, 4, n))
    c = rng.integers(0, 3, n)
    e = np.where(rng.random(n) < 0.8, c, rng.integers(0, 3, n))
    return np.stack([a, b, c, e], axis=1), EncodedDomain(("a", "b", "c", "e"), (4, 4, 3, 3))


def tvd(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


# ------------------------------------------------------------------------------ exponential mech
def test_exponential_mechanism_matches_softmax_distribution():
    rng = np.random.default_rng(1)
    scores = np.array([0.0, 1.0, 2.0, 4.0])
    eps, sens = 1.0, 1.0
    draws = np.bincount([exponential_mechanism(scores, eps, sens, rng) for _ in range(20000)], minlength=4)
    expected = np.exp(eps * scores / (2 * sens))
    expected /= expected.sum()
    assert np.abs(draws / draws.sum() - expected).max() < 0.015


def test_exponential_mechanism_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        exponential_mechanism(np.array([]), 1.0, 1.0, rng)
    with pytest.raises(ValueError):
        exponential_mechanism(np.array([1.0, np.nan]), 1.0, 1.0, rng)
    with pytest.raises(ValueError):
        exponential_mechanism(np.array([1.0]), 0.0, 1.0, rng)


# ------------------------------------------------------------------------------------ measure
def test_gaussian_measurement_noise_has_the_planned_scale():
    codes, dom = correlated_codes(200)
    rng = np.random.default_rng(3)
    exact = marginal(codes, dom, ("a", "b"))
    noise = np.concatenate([np.asarray(measure(codes, dom, ("a", "b"), 5.0, rng).y) - exact for _ in range(400)])
    assert abs(noise.std() - 5.0) < 0.15
    assert abs(noise.mean()) < 0.2


# ------------------------------------------------------------------------------------ calibration
@pytest.mark.parametrize("epsilon", [0.3, 1.0, 5.0])
def test_mst_plan_fits_the_budget_and_splits_rho_in_thirds(epsilon):
    dom = EncodedDomain(tuple("abcde"), (3, 4, 5, 2, 2))
    plan = MSTMethod().calibrate(epsilon, 1e-6, dom, 1000.0)
    eps = min(epsilon_by_accountant(plan.event, 1e-6).values())
    assert eps <= epsilon
    assert eps >= 0.9 * epsilon  # not wastefully loose
    rho = plan.parameters["rho"]
    s1, e, s2 = mst_parameters(rho, 5)
    parts = 5 / (2 * s1**2), 4 * e**2 / 8, 4 / (2 * s2**2)
    assert all(math.isclose(p, rho / 3, rel_tol=1e-9) for p in parts)
    assert plan.event == mst_event(rho, 5)
    assert plan.sampling == "none"


@pytest.mark.parametrize("epsilon", [0.3, 1.0, 10.0])
def test_independent_and_aim_plans_fit_the_budget(epsilon):
    dom = EncodedDomain(("a", "b", "c"), (3, 4, 5))
    for method in (IndependentMethod(), AIMMethod()):
        plan = method.calibrate(epsilon, 1e-6, dom, 500.0)
        eps = min(epsilon_by_accountant(plan.event, 1e-6).values())
        assert eps <= epsilon, method.name
        assert eps >= 0.9 * epsilon, method.name
    aim_plan = AIMMethod().calibrate(epsilon, 1e-6, dom, 500.0)
    assert isinstance(aim_plan.event, dp_event.ZCDpEvent)
    assert aim_plan.event.rho == aim_plan.parameters["rho"]


def test_noisy_histogram_probabilities_clip_and_normalise():
    p = noisy_histogram_probabilities(np.array([-3.0, 1.0, 3.0]))
    assert np.allclose(p, [0.0, 0.25, 0.75])
    assert np.allclose(noisy_histogram_probabilities(np.array([-1.0, -2.0])), [0.5, 0.5])


# ------------------------------------------------------------------------------------ AIM filter
def test_zcdp_filter_refuses_overspending_and_charges_nothing_then():
    f = ZcdpFilter(1.0)
    f.charge("a", 0.6)
    with pytest.raises(FilterExhaustedError):
        f.charge("b", 0.5)
    assert f.spent == pytest.approx(0.6)
    f.charge("c", 0.4)
    assert f.remaining == pytest.approx(0.0)
    with pytest.raises(ValueError):
        f.charge("d", float("nan"))


def test_aim_workload_and_candidate_weights():
    dom = EncodedDomain(("a", "b", "c"), (2, 3, 1000))
    work = workload_cliques(dom, 2, 100)
    assert work == [("a", "b")]  # pairs with c exceed the cell cap
    w = candidate_weights(work)
    assert w == {("a",): 1.0, ("a", "b"): 2.0, ("b",): 1.0}


@pytest.fixture(scope="module")
def aim_fit():
    codes, dom = correlated_codes()
    model = run_aim(
        codes, dom, rho=0.5, rounds=6, max_order=2, max_cells=1000, max_model_size=1.0,
        round_iters=50, final_iters=300, rng=np.random.default_rng(5), progress=False,
    )
    return codes, dom, model


def test_aim_spends_exactly_its_rho_through_the_filter(aim_fit):
    _, _, model = aim_fit
    total = sum(r for _, r in model.filter_log)
    assert total <= 0.5 * (1 + 1e-9)
    assert total >= 0.5 * (1 - 1e-6)  # the last round spends what is left
    assert model.rho_spent == pytest.approx(total)
    kinds = [w.split()[0] for w, _ in model.filter_log]
    assert kinds.count("measure") == kinds.count("select") + 4  # 4 one-way measurements first


def test_aim_finds_the_strong_pair(aim_fit):
    codes, dom, model = aim_fit
    assert ("a", "b") in model.cliques
    synth = model.sample(20000, np.random.default_rng(0))
    assert tvd(marginal(codes, dom, ("a", "b")), marginal(synth, dom, ("a", "b"))) < 0.08


# ------------------------------------------------------------------------------------ MST + sampler
@pytest.fixture(scope="module")
def mst_fit():
    codes, dom = correlated_codes()
    method = MSTMethod(iters=300)
    plan = method.calibrate(2.0, 1e-6, dom, float(len(codes)))
    model = method.fit(codes, plan, np.random.default_rng(7), progress=False)
    return codes, dom, model


def test_mst_tree_spans_all_columns_and_keeps_dependencies(mst_fit):
    codes, dom, model = mst_fit
    assert len(model.cliques) == 3
    assert {frozenset(e) for e in model.cliques} >= {frozenset(("a", "b")), frozenset(("c", "e"))}
    synth = model.sample(20000, np.random.default_rng(1))
    for pair in (("a", "b"), ("c", "e")):
        assert tvd(marginal(codes, dom, pair), marginal(synth, dom, pair)) < 0.06
    # an independent sample would be far from the real a-b marginal
    indep = np.stack([np.random.default_rng(2).permutation(codes[:, 0]), codes[:, 1]], axis=1)
    two = EncodedDomain(("a", "b"), (4, 4))
    assert tvd(marginal(codes, dom, ("a", "b")), marginal(indep, two, ("a", "b"))) > 0.4


def test_sampler_marginals_match_the_fitted_model(mst_fit):
    """Guards against sampler bugs (mbi 1.x's rounding sampler broke model dependencies)."""
    _, dom, model = mst_fit
    synth = model.sample(40000, np.random.default_rng(11))
    for clique in [("a", "b"), ("c", "e"), ("a", "e"), ("b", "c")]:
        model_p = model.probabilities(clique).ravel()
        assert tvd(model_p, marginal(synth, dom, clique)) < 0.03, clique


def test_sampling_is_reproducible_from_the_rng(mst_fit):
    _, _, model = mst_fit
    a = model.sample(100, np.random.default_rng(42))
    b = model.sample(100, np.random.default_rng(42))
    assert np.array_equal(a, b)
    assert a.dtype.kind == "i" and a.shape == (100, 4)


# ------------------------------------------------------------------------------------ registry
def test_registry_and_auto_rule():
    assert resolve_method_name("auto", 5) == "aim"
    assert resolve_method_name("auto", AUTO_AIM_MAX_COLUMNS + 1) == "mst"
    assert resolve_method_name("MST", 3) == "mst"
    with pytest.raises(UnknownMethodError):
        resolve_method_name("gan", 3)
    with pytest.raises(UnknownMethodError):
        get_method("mst", bogus=1)
    assert get_method("independent").name == "independent"


def test_fit_refuses_codes_outside_the_plan_domain():
    dom = EncodedDomain(("a", "b"), (2, 2))
    method = IndependentMethod()
    plan = method.calibrate(1.0, 1e-6, dom, 10.0)
    with pytest.raises(ValueError):
        method.fit(np.array([[0, 2], [1, 1]]), plan, np.random.default_rng(0), progress=False)
    bare = MethodPlan("independent", plan.event, plan.delta, {"sigma": 1.0}, "none")
    with pytest.raises(ValueError):
        method.fit(np.array([[0, 1]]), bare, np.random.default_rng(0), progress=False)
