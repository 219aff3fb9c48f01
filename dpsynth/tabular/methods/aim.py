"""AIM (McKenna, Mullins, Sheldon & Miklau, VLDB 2022): adaptive, workload-aware marginal synthesis.

Privacy unit: one row; add-or-remove-one neighbours. Guarantee: rho-zCDP for the plan's rho, which
the ledger charges as ``ZCDpEvent(rho)``. AIM chooses its per-round noise adaptively, so its
privacy rests on a **zCDP filter enforced in code** (:class:`ZcdpFilter`): every measurement and
selection is charged against ``rho`` before it runs, the final round spends exactly what is left,
and a step that would overspend raises instead of running. zCDP composes under such adaptive
choice of parameters when the total is fixed in advance (a privacy filter; Feldman & Zrnic 2021,
Whitehouse et al. 2023) -- and AIM's own proof (Thm. 1 of the paper) is this argument.

Algorithm (follows the paper / reference ``aim.py``, with work caps so CPU runs stay bounded):

* Workload: all marginals of up to ``max_order`` (default 3) columns whose table has at most
  ``max_cells`` cells; candidates are its downward closure, weighted by overlap with the workload.
* ``T = max(min(16 d, max_rounds), 2 d)`` nominal rounds (default ``T = 16 d``): sigma = sqrt(T / (2 * 0.9 rho)) and selection
  epsilon = sqrt(8 * 0.1 rho / T). All 1-way marginals are measured first.
* Each round: keep candidates whose junction tree would stay within
  ``max_model_size * rho_used / rho`` MB; pick one with the exponential mechanism on
  ``w * (||x - x_hat||_1 - sqrt(2/pi) sigma n_cells)`` (sensitivity max w); measure it with
  Gaussian noise; refit Private-PGM (warm start). If the new measurement moved the model less
  than the expected noise, halve sigma and double epsilon (annealing). When less than two rounds
  of budget remain, the last round spends the remainder.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from dp_accounting import dp_event
from tqdm.auto import tqdm

from dpsynth.tabular.methods._calibrate import domain_from_plan, domain_parameters, fit_rho
from dpsynth.tabular.methods._pgm import (
    PgmModel,
    estimate,
    hypothetical_size_mb,
    marginal,
    measure,
)
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.tabular.methods.exponential import exponential_mechanism


class FilterExhaustedError(RuntimeError):
    """A step asked the zCDP filter for more than the remaining budget."""


@dataclass
class ZcdpFilter:
    """A zCDP privacy filter: charges add up and may never exceed ``rho``."""

    rho: float
    spent: float = 0.0
    log: list[tuple[str, float]] = field(default_factory=list)

    @property
    def remaining(self) -> float:
        return max(self.rho - self.spent, 0.0)

    def charge(self, what: str, rho: float) -> None:
        """Charge ``rho`` for ``what`` or raise :class:`FilterExhaustedError` (nothing charged)."""
        if not (rho >= 0 and math.isfinite(rho)):
            raise ValueError(f"invalid zCDP charge {rho!r}")
        if self.spent + rho > self.rho * (1 + 1e-9):
            raise FilterExhaustedError(
                f"{what} needs rho={rho:.6g} but only {self.remaining:.6g} of {self.rho:.6g} is left"
            )
        self.spent += rho
        self.log.append((what, rho))


def gaussian_rho(sigma: float) -> float:
    """zCDP of one L2-sensitivity-1 Gaussian release with noise ``sigma``."""
    return 1.0 / (2.0 * sigma**2)


def em_rho(epsilon: float) -> float:
    """zCDP of one epsilon-bounded-range (exponential mechanism) selection: epsilon^2 / 8."""
    return epsilon**2 / 8.0


def workload_cliques(domain: EncodedDomain, max_order: int, max_cells: int) -> list[tuple[str, ...]]:
    """All column subsets of size ``1..max_order`` whose table has at most ``max_cells`` cells."""
    cols = list(domain.columns)
    sizes = dict(zip(domain.columns, domain.sizes))
    order = min(max_order, len(cols))
    out = []
    for cl in itertools.combinations(cols, order):
        if math.prod(sizes[c] for c in cl) <= max_cells:
            out.append(cl)
    return out


def candidate_weights(workload: list[tuple[str, ...]]) -> dict[tuple[str, ...], float]:
    """Downward closure of the workload; weight = sum over workload cliques of the overlap size."""
    closure: set[tuple[str, ...]] = set()
    for w in workload:
        for k in range(1, len(w) + 1):
            closure.update(itertools.combinations(w, k))
    return {cl: float(sum(len(set(cl) & set(w)) for w in workload)) for cl in sorted(closure)}


@dataclass
class AimModel(PgmModel):
    """A fitted AIM model with the filter's log (for audit and tests)."""

    filter_log: list[tuple[str, float]] = field(default_factory=list)
    rho_spent: float = 0.0


def nominal_rounds(d: int, max_rounds: int | None) -> int:
    """AIM's nominal round count ``T``: 16 d as in the paper, optionally capped by ``max_rounds``
    for speed, but at least 2 d so the initial 1-way measurements (d of T shares) take at most
    half the budget. (On Adult, T = 16 d gave an all-3-way TVD of 0.055 at epsilon = 1 against
    0.122 with T = 2 d: fewer rounds anneal at once and leave most columns unconnected.)"""
    cap = 16 * d if max_rounds is None else min(16 * d, int(max_rounds))
    return int(max(cap, 2 * d, 1))


class AIMMethod:
    """The AIM method (see module docstring)."""

    name = "aim"

    def __init__(
        self,
        max_order: int = 3,
        max_cells: int = 10_000,
        max_model_size: float = 2.0,
        max_rounds: int | None = None,
        round_iters: int = 150,
        final_iters: int = 1000,
    ) -> None:
        self.max_order = int(max_order)
        self.max_cells = int(max_cells)
        self.max_model_size = float(max_model_size)
        self.max_rounds = None if max_rounds is None else int(max_rounds)
        self.round_iters = int(round_iters)
        self.final_iters = int(final_iters)

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        """rho from the budget (checked by the ledger's accountants); the rest is public caps."""
        rho, event = fit_rho(epsilon, delta, lambda r: dp_event.ZCDpEvent(r))
        d = len(domain.columns)
        return MethodPlan(
            method=self.name,
            event=event,
            delta=float(delta),
            parameters={
                "rho": rho,
                "rounds": nominal_rounds(d, self.max_rounds),
                "max_order": self.max_order,
                "max_cells": self.max_cells,
                "max_model_size_mb": self.max_model_size,
                "round_iters": self.round_iters,
                "final_iters": self.final_iters,
                **domain_parameters(domain),
            },
            sampling="none",
        )

    def fit(self, codes: np.ndarray, plan: MethodPlan, rng: np.random.Generator, progress: bool = True) -> AimModel:
        """Run AIM under a zCDP filter of the plan's rho."""
        domain = domain_from_plan(plan, codes)
        p = plan.parameters
        return run_aim(
            codes,
            domain,
            rho=float(p["rho"]),
            rounds=int(p["rounds"]),
            max_order=int(p["max_order"]),
            max_cells=int(p["max_cells"]),
            max_model_size=float(p["max_model_size_mb"]),
            round_iters=int(p["round_iters"]),
            final_iters=int(p["final_iters"]),
            rng=rng,
            progress=progress,
        )


def run_aim(
    codes: np.ndarray,
    domain: EncodedDomain,
    *,
    rho: float,
    rounds: int,
    max_order: int,
    max_cells: int,
    max_model_size: float,
    round_iters: int,
    final_iters: int,
    rng: np.random.Generator,
    progress: bool = True,
) -> AimModel:
    """AIM's select-measure-generate loop; every private access is charged to a :class:`ZcdpFilter`."""
    budget = ZcdpFilter(rho)
    cols = list(domain.columns)
    workload = workload_cliques(domain, max_order, max_cells)
    weights = candidate_weights(workload) if workload else {(c,): 1.0 for c in cols}
    sizes = dict(zip(domain.columns, domain.sizes))
    rounds = max(int(rounds), 1)
    sigma = math.sqrt(rounds / (2 * 0.9 * rho))
    epsilon = math.sqrt(8 * 0.1 * rho / rounds)

    one_way_rho = len(cols) * gaussian_rho(sigma)
    if one_way_rho > budget.remaining:  # tiny budgets: spend it all on the 1-way marginals
        sigma = math.sqrt(len(cols) / (2 * budget.remaining))
    measurements = []
    for c in cols:
        budget.charge(f"measure {c}", gaussian_rho(sigma))
        measurements.append(measure(codes, domain, (c,), sigma, rng))
    model = estimate(domain, measurements, iters=round_iters)
    cliques: list[tuple[str, ...]] = []
    true_marginals: dict[tuple[str, ...], np.ndarray] = {}

    bar = tqdm(total=100, desc="AIM budget %", disable=not progress, leave=False)
    shown = 0
    terminate = budget.remaining <= 1e-12 * rho
    while not terminate:
        remaining = budget.remaining
        if remaining < 2 * (gaussian_rho(sigma) + em_rho(epsilon)):
            # Last round: spend exactly what is left (90% measurement, 10% selection).
            sigma = math.sqrt(1 / (2 * 0.9 * remaining))
            epsilon = math.sqrt(8 * 0.1 * remaining)
            terminate = True
        size_limit = max_model_size * (budget.spent + gaussian_rho(sigma) + em_rho(epsilon)) / rho
        candidates = [
            cl
            for cl in weights
            if cl in cliques or hypothetical_size_mb(domain, cliques + [cl]) <= size_limit
        ]
        pgm = PgmModel(domain=domain, model=model, cliques=tuple(cliques))
        estimates = pgm.query_marginals(candidates, rng)
        total = float(np.asarray(model.total))
        scores = np.empty(len(candidates))
        for i, cl in enumerate(candidates):
            if cl not in true_marginals:
                true_marginals[cl] = marginal(codes, domain, cl)
            x = true_marginals[cl]
            bias = math.sqrt(2 / math.pi) * sigma * math.prod(sizes[a] for a in cl)
            scores[i] = weights[cl] * (np.abs(x - total * estimates[cl]).sum() - bias)
        sensitivity = max(weights[cl] for cl in candidates)
        budget.charge("select", em_rho(epsilon))
        chosen = candidates[exponential_mechanism(scores, epsilon, sensitivity, rng)]
        budget.charge(f"measure {'x'.join(chosen)}", gaussian_rho(sigma))
        m = measure(codes, domain, chosen, sigma, rng)
        measurements.append(m)
        if chosen not in cliques and len(chosen) > 1:
            cliques.append(chosen)
        before = total * estimates[chosen]
        model = estimate(domain, measurements, iters=round_iters, warm_start=model)
        after = np.asarray(model.project(chosen).datavector(flatten=True), dtype=np.float64)
        if np.abs(after - before).sum() <= math.sqrt(2 / math.pi) * sigma * after.size:
            sigma /= 2.0
            epsilon *= 2.0
        pct = int(100 * budget.spent / rho)
        bar.update(max(pct - shown, 0))
        shown = max(shown, pct)
    bar.close()
    model = estimate(domain, measurements, iters=final_iters, warm_start=model)
    return AimModel(
        domain=domain,
        model=model,
        cliques=tuple(cliques) if cliques else tuple((c,) for c in cols),
        filter_log=list(budget.log),
        rho_spent=budget.spent,
    )
