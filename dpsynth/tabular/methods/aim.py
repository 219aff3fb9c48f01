"""AIM (McKenna, Mullins, Sheldon & Miklau, VLDB 2022): adaptive, workload-aware marginal synthesis.

Privacy unit: one row; add-or-remove-one neighbours. Guarantee: rho-zCDP for the plan's rho, which
the ledger charges as ``ZCDpEvent(rho)``. AIM chooses its per-round noise adaptively, so its
privacy rests on a **zCDP filter enforced in code** (:class:`ZcdpFilter`): every measurement and
selection is charged against ``rho`` before it runs, the final round spends exactly what is left,
and a step that would overspend raises instead of running. zCDP composes under such adaptive
choice of parameters when the total is fixed in advance (a privacy filter; Feldman & Zrnic 2021,
Whitehouse et al. 2023) -- and AIM's own proof (Thm. 1 of the paper) is this argument. The same
argument covers the adaptive *stop* of ``max_time``: when the time runs short AIM moves to its
final round, which spends the rest of the budget, so the charge never changes. **Wall time is a
side channel this guarantee does not cover**: how long a fit ran (and, under ``max_time``, how
many rounds it took) depends on the data and is not protected.

Algorithm (follows the paper / reference ``aim.py``):

* Workload: ``workload`` (a list of marginals) if given, else all marginals of ``max_order``
  (default 3) columns whose table has at most ``max_cells`` cells; candidates are its downward
  closure, weighted by overlap with the workload. With ``target`` (a column a model will predict),
  workload marginals that contain the target count ``target_weight`` times.
* ``T = max(min(16 d, max_rounds), 2 d)`` nominal rounds (default ``T = 16 d``):
  sigma = sqrt(T / (2 * 0.9 rho)) and selection epsilon = sqrt(8 * 0.1 rho / T). All 1-way
  marginals are measured first.
* Each round: keep candidates whose junction tree would stay within
  ``max_model_size * rho_used / rho`` MB; pick one with the exponential mechanism on
  ``w * (||x - x_hat||_1 - sqrt(2/pi) sigma n_cells)`` (sensitivity max w); measure it with
  Gaussian noise; refit Private-PGM warm-started from the last model and stopped on convergence.
  If the new measurement moved the model less than the expected noise, halve sigma and double
  epsilon (annealing). When less than two rounds of budget remain (or ``max_time`` runs short),
  the last round spends the remainder.

Cost: estimation is numpy mirror descent (:mod:`._estimate`; nothing compiled, so a model whose
cliques change every round costs no recompilation), each exact marginal of the private table is
computed once, and the model-size check is a fast greedy elimination (:mod:`._junction`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from dp_accounting import dp_event
from tqdm.auto import tqdm

from dpsynth.errors import DpsynthError
from dpsynth.tabular.methods._calibrate import domain_from_plan, domain_parameters, fit_rho
from dpsynth.tabular.methods._estimate import maximal
from dpsynth.tabular.methods._junction import model_cells
from dpsynth.tabular.methods._pgm import PgmModel, estimate, indices, marginal, measure, sorted_clique
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.tabular.methods.exponential import exponential_mechanism
from dpsynth.tabular.methods.workload import normalise_workload, target_option, workload_option


class FilterExhaustedError(DpsynthError, RuntimeError):
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
    """All column subsets of size ``max_order`` whose table has at most ``max_cells`` cells."""
    cols = list(domain.columns)
    sizes = dict(zip(domain.columns, domain.sizes))
    order = min(max_order, len(cols))
    out = []
    for cl in itertools.combinations(cols, order):
        if math.prod(sizes[c] for c in cl) <= max_cells:
            out.append(cl)
    return out


def candidate_weights(
    workload: list[tuple[str, ...]], workload_weights: Sequence[float] | None = None
) -> dict[tuple[str, ...], float]:
    """Downward closure of the workload; weight = sum over workload cliques of (weight x overlap size)."""
    ws = [1.0] * len(workload) if workload_weights is None else [float(w) for w in workload_weights]
    closure: set[tuple[str, ...]] = set()
    for w in workload:
        for k in range(1, len(w) + 1):
            closure.update(itertools.combinations(w, k))
    return {
        cl: float(sum(wt * len(set(cl) & set(w)) for w, wt in zip(workload, ws))) for cl in sorted(closure)
    }


@dataclass
class AimModel(PgmModel):
    """A fitted AIM model with the filter's log and per-round trace (for audit and tests)."""

    filter_log: list[tuple[str, float]] = field(default_factory=list)
    rho_spent: float = 0.0
    rounds_run: int = 0
    stopped_by_time: bool = False


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
        round_iters: int = 100,
        final_iters: int = 1000,
        tol: float = 1e-4,
        max_time: float | None = None,
        target: str | None = None,
        target_weight: float = 4.0,
        workload: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.max_order = int(max_order)
        self.max_cells = int(max_cells)
        self.max_model_size = float(max_model_size)
        self.max_rounds = None if max_rounds is None else int(max_rounds)
        self.round_iters = int(round_iters)
        self.final_iters = int(final_iters)
        self.tol = float(tol)
        if max_time is not None and not (float(max_time) > 0 and math.isfinite(float(max_time))):
            raise ValueError(f"max_time must be a positive number of seconds, got {max_time!r}")
        self.max_time = None if max_time is None else float(max_time)
        self.target = target_option(target)
        self.target_weight = float(target_weight)
        self.workload = workload_option(workload)

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        """rho from the budget (checked by the ledger's accountants); the rest is public caps."""
        rho, event = fit_rho(epsilon, delta, lambda r: dp_event.ZCDpEvent(r))
        d = len(domain.columns)
        workload = normalise_workload(domain, self.workload, self.target)
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
                "tol": self.tol,
                "max_time_s": self.max_time,
                "target": self.target,
                "target_weight": self.target_weight if self.target is not None else None,
                "workload": None if workload is None else [list(w) for w in workload],
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
            tol=float(p.get("tol", 1e-4)),
            max_time=p.get("max_time_s"),
            target=p.get("target"),
            target_weight=float(p.get("target_weight") or 1.0),
            workload=p.get("workload"),
            rng=rng,
            progress=progress,
        )


def _workload_and_weights(
    domain: EncodedDomain,
    max_order: int,
    max_cells: int,
    workload: Sequence[Sequence[str]] | None,
    target: str | None,
    target_weight: float,
) -> dict[tuple[str, ...], float]:
    if workload is None:
        work = workload_cliques(domain, max_order, max_cells)
    else:
        work = [sorted_clique(domain, w) for w in workload]
    if not work:
        return {(c,): 1.0 for c in domain.columns}
    ws = [target_weight if (target is not None and target in w) else 1.0 for w in work]
    return candidate_weights(work, ws)


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
    tol: float = 1e-4,
    max_time: float | None = None,
    target: str | None = None,
    target_weight: float = 1.0,
    workload: Sequence[Sequence[str]] | None = None,
    progress: bool = True,
    clock=time.monotonic,
) -> AimModel:
    """AIM's select-measure-generate loop; every private access is charged to a :class:`ZcdpFilter`.

    ``max_time`` (seconds, measured with ``clock`` from the call) moves AIM to its final round
    early, leaving time for the final estimation (see the module docstring on side channels).
    """
    started = clock()
    budget = ZcdpFilter(rho)
    cols = list(domain.columns)
    weights = _workload_and_weights(domain, max_order, max_cells, workload, target, target_weight)
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
    t0 = clock()
    model = estimate(domain, measurements, iters=round_iters, tol=tol)
    last_estimate_s = clock() - t0
    cliques: list[tuple[str, ...]] = []
    true_marginals: dict[tuple[str, ...], np.ndarray] = {}  # exact private counts, each computed once
    cells = {cl: math.prod(sizes[a] for a in cl) for cl in weights}
    size_cache: dict[tuple, int] = {}  # public: junction-tree sizes of hypothetical models
    max_cells_model = max_model_size * 2**20 / 8

    bar = tqdm(total=100, desc="AIM budget %", disable=not progress, leave=False)
    shown = 0
    rounds_run = 0
    stopped_by_time = False
    round_seconds = 0.0
    terminate = budget.remaining <= 1e-12 * rho
    while not terminate:
        round_start = clock()
        remaining = budget.remaining
        out_of_time = False
        if max_time is not None:
            # this round as the last one, then the final estimation (given whatever time is left)
            needed = max(round_seconds, 2 * last_estimate_s)
            out_of_time = (round_start - started) + 2 * needed > max_time
        budget_end = remaining < 2 * (gaussian_rho(sigma) + em_rho(epsilon))
        if budget_end or out_of_time:
            # Last round: spend exactly what is left (90% measurement, 10% selection).
            sigma = math.sqrt(1 / (2 * 0.9 * remaining))
            epsilon = math.sqrt(8 * 0.1 * remaining)
            terminate = True
            stopped_by_time = not budget_end
        size_limit = max_cells_model * (budget.spent + gaussian_rho(sigma) + em_rho(epsilon)) / rho
        model_idx = [indices(domain, c) for c in cliques]
        structure = frozenset(maximal(model_idx))  # subsets add no edges: same sizes
        nodes = [set(n) for n in model.tree.nodes]
        candidates = []
        for cl in weights:
            idx = indices(domain, cl)
            if any(set(idx) <= n for n in nodes):
                candidates.append(cl)
                continue
            key = (structure, idx)  # the size depends only on the model's cliques and the candidate
            if key not in size_cache:
                size_cache[key] = model_cells(domain.sizes, model_idx + [idx])
            if size_cache[key] <= size_limit:
                candidates.append(cl)
        pgm = PgmModel(domain=domain, model=model, cliques=tuple(cliques))
        estimates = pgm.query_marginals(candidates, rng)
        total = float(model.total)
        scores = np.empty(len(candidates))
        for i, cl in enumerate(candidates):
            if cl not in true_marginals:
                true_marginals[cl] = marginal(codes, domain, cl)
            bias = math.sqrt(2 / math.pi) * sigma * cells[cl]
            scores[i] = weights[cl] * (np.abs(true_marginals[cl] - total * estimates[cl]).sum() - bias)
        sensitivity = max(weights[cl] for cl in candidates)
        budget.charge("select", em_rho(epsilon))
        chosen = candidates[exponential_mechanism(scores, epsilon, sensitivity, rng)]
        budget.charge(f"measure {'x'.join(chosen)}", gaussian_rho(sigma))
        measurements.append(measure(codes, domain, chosen, sigma, rng))
        if chosen not in cliques and len(chosen) > 1:
            cliques.append(chosen)
        before = total * estimates[chosen]
        t0 = clock()
        model = estimate(domain, measurements, iters=round_iters, tol=tol, warm_start=model)
        last_estimate_s = clock() - t0
        after = model.marginal(indices(domain, chosen)).ravel()
        if np.abs(after - before).sum() <= math.sqrt(2 / math.pi) * sigma * after.size:
            sigma /= 2.0
            epsilon *= 2.0
        rounds_run += 1
        round_seconds = clock() - round_start
        pct = int(100 * budget.spent / rho)
        bar.update(max(pct - shown, 0))
        bar.set_postfix_str(f"round {rounds_run}: {'x'.join(chosen)}", refresh=False)
        shown = max(shown, pct)
    bar.close()
    iters = final_iters
    if max_time is not None and last_estimate_s > 0:
        left = max_time - (clock() - started)
        per_iter = last_estimate_s / max(model.iterations, 1)
        iters = int(min(final_iters, max(left / per_iter, 20)))
    model = estimate(domain, measurements, iters=iters, tol=tol / 10, warm_start=model)
    return AimModel(
        domain=domain,
        model=model,
        cliques=tuple(cliques) if cliques else tuple((c,) for c in cols),
        filter_log=list(budget.log),
        rho_spent=budget.spent,
        rounds_run=rounds_run,
        stopped_by_time=stopped_by_time,
    )
