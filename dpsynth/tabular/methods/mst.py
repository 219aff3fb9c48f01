"""MST (McKenna, Miklau & Sheldon 2021): maximum-spanning-tree marginal synthesis on Private-PGM.

Privacy unit: one row of the table; add-or-remove-one neighbours. Guarantee: the plan's event,
charged by the ledger, which is at most the (epsilon, delta) the plan was calibrated for.

Algorithm (zCDP budget rho, split 1/3 : 1/3 : 1/3 as in the paper):

1. Measure every 1-way marginal with Gaussian noise (sigma_1 = sqrt(3 d / (2 rho)); d releases).
2. Form the independent model of the 1-way measurements (post-processing), then build a maximum spanning tree
   over the columns with d - 1 exponential-mechanism picks (each epsilon_em-bounded-range with
   ``(d - 1) epsilon_em^2 / 8 = rho / 3``). The score of a candidate pair is the L1 distance
   between its true 2-way marginal and the 1-way model's estimate; adding/removing a row moves it
   by at most 1 (sensitivity 1).
3. Measure the d - 1 tree edges' 2-way marginals (sigma_2 = sqrt(3 (d - 1) / (2 rho))).
4. Fit Private-PGM on all measurements; sample.

Event: ``Composed[SelfComposed(Gaussian(sigma_1), d), SelfComposed(EM(eps_em), d-1),
SelfComposed(Gaussian(sigma_2), d-1)]`` -- exact zCDP rho in total, shrunk until the ledger's
accountants agree it fits (see :func:`fit_rho`).

Unlike the reference implementation we do not merge rare categories ("compress"); our domains
are already coarse public bins.
"""

from __future__ import annotations

import math

import numpy as np
from dp_accounting import dp_event
from tqdm.auto import tqdm

from dpsynth.tabular.methods._calibrate import domain_from_plan, domain_parameters, fit_rho
from dpsynth.tabular.methods._pgm import PgmModel, estimate, marginal, measure
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.tabular.methods.exponential import exponential_mechanism


def mst_event(rho: float, d: int) -> dp_event.DpEvent:
    """MST's event for total zCDP ``rho`` on ``d`` columns."""
    from dpsynth.tabular._accounting import ExponentialMechanismDpEvent

    sigma1, eps_em, sigma2 = mst_parameters(rho, d)
    events: list[dp_event.DpEvent] = [dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma1), d)]
    if d > 1:
        events.append(dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(eps_em), d - 1))
        events.append(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma2), d - 1))
    return dp_event.ComposedDpEvent(events)


def mst_parameters(rho: float, d: int) -> tuple[float, float, float]:
    """(sigma_1, epsilon_em, sigma_2) for total zCDP ``rho`` on ``d`` columns."""
    if d == 1:
        return math.sqrt(1.0 / (2.0 * rho)), 0.0, 0.0
    part = rho / 3.0
    sigma1 = math.sqrt(d / (2.0 * part))
    eps_em = math.sqrt(8.0 * part / (d - 1))
    sigma2 = math.sqrt((d - 1) / (2.0 * part))
    return sigma1, eps_em, sigma2


class MSTMethod:
    """The MST method (see module docstring)."""

    name = "mst"

    def __init__(self, iters: int = 1000) -> None:
        self.iters = int(iters)

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        """Fix rho and every noise scale from the budget and the domain's column count."""
        d = len(domain.columns)
        if d < 1:
            raise ValueError("MST needs at least one column")
        rho, event = fit_rho(epsilon, delta, lambda r: mst_event(r, d))
        sigma1, eps_em, sigma2 = mst_parameters(rho, d)
        return MethodPlan(
            method=self.name,
            event=event,
            delta=float(delta),
            parameters={
                "rho": rho,
                "sigma_1way": sigma1,
                "epsilon_selection_per_step": eps_em,
                "sigma_2way": sigma2,
                "iters": self.iters,
                **domain_parameters(domain),
            },
            sampling="none",
        )

    def fit(self, codes: np.ndarray, plan: MethodPlan, rng: np.random.Generator, progress: bool = True) -> PgmModel:
        """Run MST on the private codes following ``plan``."""
        domain = domain_from_plan(plan, codes)
        p = plan.parameters
        cols = list(domain.columns)
        bar = tqdm(total=3, desc="MST", disable=not progress, leave=False)
        one_way = [measure(codes, domain, (c,), p["sigma_1way"], rng) for c in cols]
        bar.update(1)
        edges: list[tuple[str, str]] = []
        if len(cols) > 1:
            edges = select_tree(codes, domain, one_way, p["epsilon_selection_per_step"], rng)
        bar.update(1)
        two_way = [measure(codes, domain, e, p["sigma_2way"], rng) for e in edges]
        model = estimate(domain, one_way + two_way, iters=self.iters)
        bar.update(1)
        bar.close()
        cliques = tuple(edges) if edges else tuple((c,) for c in cols)
        return PgmModel(domain=domain, model=model, cliques=cliques)


def independent_estimate(one_way: list) -> tuple[float, dict[str, np.ndarray]]:
    """Total and per-column probabilities from the noisy 1-way measurements (post-processing).

    The total is the inverse-variance average of the noisy sums (all have the same sigma, so the
    plain mean); each column's probabilities are its clipped, normalised noisy counts. This is the
    independent model MST scores its candidate edges against, computed without a PGM fit.
    """
    total = max(float(np.mean([np.sum(m.noisy_measurement) for m in one_way])), 1.0)
    probs = {}
    for m in one_way:
        p = np.clip(np.asarray(m.noisy_measurement, dtype=np.float64), 0.0, None)
        probs[m.clique[0]] = p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)
    return total, probs


def select_tree(codes: np.ndarray, domain: EncodedDomain, one_way: list, eps_em: float, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Private maximum spanning tree: d - 1 exponential-mechanism picks of L1-error-weighted edges.

    Scores are ``||x_ab - x_hat_ab||_1`` against the independent model of the noisy 1-way
    measurements (sensitivity 1 under add/remove-one: ``x_ab`` changes by one in one cell).
    """
    cols = list(domain.columns)
    total, probs = independent_estimate(one_way)
    weights: dict[tuple[str, str], float] = {}
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            x = marginal(codes, domain, (a, b))
            xhat = total * np.outer(probs[a], probs[b]).ravel()
            weights[(a, b)] = float(np.abs(x - xhat).sum())
    component = {c: c for c in cols}

    def find(c: str) -> str:
        while component[c] != c:
            component[c] = component[component[c]]
            c = component[c]
        return c

    chosen: list[tuple[str, str]] = []
    for _ in range(len(cols) - 1):
        candidates = [e for e in weights if find(e[0]) != find(e[1])]
        scores = np.array([weights[e] for e in candidates])
        k = exponential_mechanism(scores, eps_em, sensitivity=1.0, rng=rng)
        a, b = candidates[k]
        chosen.append((a, b))
        component[find(a)] = find(b)
    return chosen

