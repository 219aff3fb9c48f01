"""MST (McKenna, Miklau & Sheldon 2021): maximum-spanning-tree marginal synthesis on Private-PGM.

Privacy unit: one row of the table; add-or-remove-one neighbours. Guarantee: the plan's event,
charged by the ledger, which is at most the (epsilon, delta) the plan was calibrated for.

Algorithm (zCDP budget rho, split 1/3 : 1/3 : 1/3 as in the paper unless ``split`` says otherwise):

1. Measure every 1-way marginal with Gaussian noise (sigma_1 = sqrt(3 d / (2 rho)); d releases).
2. Compress (post-processing, as the paper does): in each column the values whose noisy count is
   below ``3 sigma_1`` are merged into one bin; the 1-way measurement is re-expressed on the
   merged domain (the merged bin's noise is ``sigma_1 sqrt(k)``). The total is estimated from
   the 1-way sums *before* merging and passed on (mbi's estimator returns 1.0 after the
   re-expression).
3. Form the independent model of the compressed 1-way measurements, then build a maximum spanning
   tree over the columns with d - 1 exponential-mechanism picks (each epsilon_em-bounded-range with
   ``(d - 1) epsilon_em^2 / 8 = rho / 3``). The score of a candidate pair is the L1 distance
   between its true 2-way marginal (on the merged domain) and the outer product of the
   independent model; adding/removing a row moves it by at most 1 (sensitivity 1). With
   ``target``, the first picks are made among the target's pairs until it has ``target_degree``
   tree neighbours (its strongest partners, still chosen by the exponential mechanism).
4. Measure the d - 1 tree edges' 2-way marginals (sigma_2 = sqrt(3 (d - 1) / (2 rho))).
5. Fit Private-PGM on all measurements to convergence; sample with the rounding sampler; values of
   a merged bin are drawn in proportion to their clipped noisy 1-way counts (post-processing; the
   paper draws them uniformly, ``spread="uniform"``).

The split of rho between steps 1, 3 and 4 is ``split`` (default the paper's thirds), a public plan
parameter.

Event: ``Composed[SelfComposed(Gaussian(sigma_1), d), SelfComposed(EM(eps_em), d-1),
SelfComposed(Gaussian(sigma_2), d-1)]`` -- exact zCDP rho in total, shrunk until the ledger's
accountants agree it fits (see :func:`fit_rho`). ``fit`` records every release it makes
(``MstModel.releases``); a test checks they rebuild the plan's event exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from dp_accounting import dp_event
from tqdm.auto import tqdm

from dpsynth.tabular.methods._calibrate import domain_from_plan, domain_parameters, fit_rho
from dpsynth.tabular.methods._estimate import Measurement, estimate_total
from dpsynth.tabular.methods._pgm import PgmModel, estimate, marginal
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.tabular.methods.exponential import exponential_mechanism
from dpsynth.tabular.methods.workload import WorkloadError, check_target, target_option


#: The paper's split of rho between the 1-way measurements, the tree selection and the 2-way measurements.
PAPER_SPLIT = (1 / 3, 1 / 3, 1 / 3)


def mst_event(rho: float, d: int, split: tuple[float, float, float] = PAPER_SPLIT) -> dp_event.DpEvent:
    """MST's event for total zCDP ``rho`` on ``d`` columns."""
    from dpsynth.tabular._accounting import ExponentialMechanismDpEvent

    sigma1, eps_em, sigma2 = mst_parameters(rho, d, split)
    events: list[dp_event.DpEvent] = [dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma1), d)]
    if d > 1:
        events.append(dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(eps_em), d - 1))
        events.append(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma2), d - 1))
    return dp_event.ComposedDpEvent(events)


def mst_parameters(rho: float, d: int, split: tuple[float, float, float] = PAPER_SPLIT) -> tuple[float, float, float]:
    """(sigma_1, epsilon_em, sigma_2) for total zCDP ``rho`` on ``d`` columns, ``split`` between the
    three steps (fractions summing to one)."""
    if d == 1:
        return math.sqrt(1.0 / (2.0 * rho)), 0.0, 0.0
    f1, f2, f3 = (float(f) / sum(split) for f in split)
    sigma1 = math.sqrt(d / (2.0 * f1 * rho))
    eps_em = math.sqrt(8.0 * f2 * rho / (d - 1))
    sigma2 = math.sqrt((d - 1) / (2.0 * f3 * rho))
    return sigma1, eps_em, sigma2


@dataclass
class MstModel:
    """MST's model on the merged domain, with each column's value map; sampling is post-processing.

    ``within`` holds, per column, each original value's share of its merged bin: the clipped noisy
    1-way counts of the bin's values, normalised within the bin (post-processing of released
    measurements; uniform when they are all clipped to zero). The paper spreads a merged bin
    uniformly, which puts as much mass on a value that never occurs as on one seen hundreds of times.
    """

    domain: EncodedDomain  # the original (public) encoded domain
    compressed: PgmModel  # the model on the merged domain
    mappings: list[np.ndarray]  # per column: original code -> merged code
    cliques: tuple[tuple[str, ...], ...]
    releases: list[tuple] = field(default_factory=list)  # ("gaussian", sigma) / ("exponential", eps)
    within: list[np.ndarray] | None = None  # per column: share of each original value in its merged bin

    @property
    def total(self) -> float:
        return self.compressed.total

    def _spread(self, j: int) -> np.ndarray:
        """Per original value: its share of its merged bin (sums to one within each bin)."""
        m = self.mappings[j]
        if self.within is not None:
            return self.within[j]
        return 1.0 / np.bincount(m)[m]

    def probabilities(self, clique) -> np.ndarray:
        """The model's normalised marginal over ``clique`` on the original domain (merged bins spread by ``within``)."""
        p = self.compressed.probabilities(clique)
        for axis, c in enumerate(clique):
            j = self.domain.columns.index(c)
            p = np.take(p, self.mappings[j], axis=axis)
            shape = [1] * p.ndim
            shape[axis] = -1
            p = p * self._spread(j).reshape(shape)
        return p / p.sum()

    def sample(self, n: int, rng: np.random.Generator, method: str = "round") -> np.ndarray:
        """``n`` rows: sample the merged domain, then draw each merged bin's original value by its share."""
        merged = self.compressed.sample(n, rng, method=method)
        out = np.empty_like(merged)
        for j, m in enumerate(self.mappings):
            out[:, j] = split_merged(merged[:, j], m, self._spread(j), rng)
        return out


def within_bin_shares(noisy: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Each original value's share of its merged bin from the clipped noisy counts (uniform in a bin
    whose clipped counts are all zero). Post-processing of the noisy 1-way measurement."""
    w = np.clip(np.asarray(noisy, dtype=np.float64), 0.0, None)
    k = np.bincount(mapping)
    sums = np.bincount(mapping, weights=w, minlength=k.size)
    return np.where(sums[mapping] > 0, w / np.where(sums[mapping] > 0, sums[mapping], 1.0), 1.0 / k[mapping])


def split_merged(codes: np.ndarray, mapping: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Original values for merged ``codes``: within each merged bin, values in proportion to ``shares``,
    by stratified rounding (each bin's draws follow its shares up to rounding, in random order)."""
    counts = np.bincount(mapping)
    single = np.zeros(counts.size, dtype=np.int64)
    single[mapping] = np.arange(mapping.size)  # for a one-value bin: that value
    out = single[codes]
    for b in np.flatnonzero(counts > 1):
        rows = np.flatnonzero(codes == b)
        members = np.flatnonzero(mapping == b)
        cdf = np.cumsum(shares[members])
        cdf /= cdf[-1]
        u = (rng.permutation(rows.size) + rng.random(rows.size)) / rows.size
        out[rows] = members[np.minimum(np.searchsorted(cdf, u, side="right"), members.size - 1)]
    return out


class MSTMethod:
    """The MST method (see module docstring)."""

    name = "mst"

    def __init__(
        self,
        iters: int = 5000,
        tol: float = 1e-6,
        compress: bool = True,
        target: str | None = None,
        target_degree: int = 3,
        max_time: float | None = None,
        workload: object = None,
        spread: str = "noisy",
        split: tuple[float, float, float] = PAPER_SPLIT,
    ) -> None:
        split = tuple(float(f) for f in split)
        if len(split) != 3 or not all(f > 0 and math.isfinite(f) for f in split):
            raise ValueError(f"split must be three positive fractions, got {split!r}")
        self.split = split
        if spread not in ("noisy", "uniform"):
            raise ValueError(f"spread must be 'noisy' or 'uniform', got {spread!r}")
        self.spread = spread
        if workload is not None:
            raise WorkloadError("MST selects its own tree and takes no workload; use target= (or method='aim')")
        self.iters = int(iters)
        self.tol = float(tol)
        self.compress = bool(compress)
        self.target = target_option(target)
        self.target_degree = int(target_degree)
        self.max_time = None if max_time is None else float(max_time)  # accepted for a uniform API; MST's cost is fixed

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        """Fix rho and every noise scale from the budget and the domain's column count."""
        d = len(domain.columns)
        if d < 1:
            raise ValueError("MST needs at least one column")
        check_target(domain, self.target)
        rho, event = fit_rho(epsilon, delta, lambda r: mst_event(r, d, self.split))
        sigma1, eps_em, sigma2 = mst_parameters(rho, d, self.split)
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
                "tol": self.tol,
                "compress": self.compress,
                "spread": self.spread,
                "split": list(self.split),
                "target": self.target,
                "target_degree": self.target_degree if self.target is not None else None,
                **domain_parameters(domain),
            },
            sampling="none",
        )

    def fit(self, codes: np.ndarray, plan: MethodPlan, rng: np.random.Generator, progress: bool = True) -> MstModel:
        """Run MST on the private codes following ``plan``."""
        domain = domain_from_plan(plan, codes)
        p = plan.parameters
        cols = list(domain.columns)
        releases: list[tuple] = []
        bar = tqdm(total=4, desc="MST", disable=not progress, leave=False)
        sigma1 = float(p["sigma_1way"])
        one_way = []
        for c in cols:
            x = marginal(codes, domain, (c,))
            one_way.append(x + rng.normal(0.0, sigma1, size=x.shape))
            releases.append(("gaussian", sigma1))
        total = estimate_total([Measurement((j,), y, sigma1) for j, y in enumerate(one_way)])
        bar.update(1)
        mappings = [compress_mapping(y, sigma1) if p.get("compress", True) else np.arange(y.size) for y in one_way]
        small = EncodedDomain(domain.columns, tuple(int(m.max()) + 1 for m in mappings))
        measurements = [
            Measurement((j,), *merge_measurement(y, sigma1, mappings[j])) for j, y in enumerate(one_way)
        ]
        edges: list[tuple[str, str]] = []
        if len(cols) > 1:
            probs = [independent_probabilities(m.y) for m in measurements]
            edges = select_tree(
                codes, domain, mappings, probs, total, float(p["epsilon_selection_per_step"]), rng,
                target=p.get("target"), target_degree=int(p.get("target_degree") or 0), releases=releases,
            )
        bar.update(1)
        sigma2 = float(p["sigma_2way"])
        for a, b in edges:
            i, j = sorted((cols.index(a), cols.index(b)))
            x = compressed_marginal(codes, domain, (cols[i], cols[j]), (mappings[i], mappings[j]))
            measurements.append(Measurement((i, j), x + rng.normal(0.0, sigma2, size=x.shape), sigma2))
            releases.append(("gaussian", sigma2))
        bar.update(1)
        model = estimate(small, measurements, iters=int(p["iters"]), tol=float(p.get("tol", 1e-6)), total=total)
        bar.update(1)
        bar.close()
        cliques = tuple(edges) if edges else tuple((c,) for c in cols)
        pgm = PgmModel(domain=small, model=model, cliques=cliques)
        within = [within_bin_shares(y, m) for y, m in zip(one_way, mappings)] if p.get("spread", "noisy") == "noisy" else None
        return MstModel(domain=domain, compressed=pgm, mappings=mappings, cliques=cliques, releases=releases,
                        within=within)


def compress_mapping(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Original code -> merged code: values with noisy count >= 3 sigma keep a code (in order), the
    rest share one last bin (post-processing of the noisy 1-way marginal)."""
    keep = np.asarray(noisy) >= 3.0 * sigma
    if keep.all() or (~keep).sum() == 1:
        return np.arange(keep.size)
    mapping = np.empty(keep.size, dtype=np.int64)
    mapping[keep] = np.arange(int(keep.sum()))
    mapping[~keep] = int(keep.sum())
    return mapping


def merge_measurement(noisy: np.ndarray, sigma: float, mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1-way measurement on the merged domain and its per-cell noise (a merged bin of k values
    is the sum of k noisy counts: noise ``sigma sqrt(k)``)."""
    k = np.bincount(mapping)
    y = np.bincount(mapping, weights=np.asarray(noisy, dtype=np.float64), minlength=k.size)
    return y, sigma * np.sqrt(k.astype(np.float64))


def compressed_marginal(codes: np.ndarray, domain: EncodedDomain, clique, maps) -> np.ndarray:
    """Exact counts of ``clique`` on the merged domain (flat, C order), via :func:`marginal`."""
    shape = [int(domain.sizes[domain.columns.index(c)]) for c in clique]
    x = marginal(codes, domain, clique).reshape(shape)
    new_shape = [int(m.max()) + 1 for m in maps]
    grids = np.meshgrid(*maps, indexing="ij")
    flat = np.ravel_multi_index([g.ravel() for g in grids], new_shape)
    return np.bincount(flat, weights=x.ravel(), minlength=math.prod(new_shape))


def independent_probabilities(noisy: np.ndarray) -> np.ndarray:
    """Clipped, normalised noisy counts (uniform if nothing is left)."""
    p = np.clip(np.asarray(noisy, dtype=np.float64), 0.0, None)
    return p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)


def independent_estimate(one_way: list) -> tuple[float, dict[str, np.ndarray]]:
    """Total and per-column probabilities from noisy 1-way measurements (``.y``, ``.clique``)."""
    total = estimate_total(one_way)
    return total, {m.clique[0]: independent_probabilities(m.y) for m in one_way}


def select_tree(
    codes: np.ndarray,
    domain: EncodedDomain,
    mappings: list[np.ndarray],
    probs: list[np.ndarray],
    total: float,
    eps_em: float,
    rng: np.random.Generator,
    *,
    target: str | None = None,
    target_degree: int = 0,
    releases: list | None = None,
) -> list[tuple[str, str]]:
    """Private maximum spanning tree: d - 1 exponential-mechanism picks of L1-error-weighted edges.

    Scores are ``||x_ab - total * p_a (x) p_b||_1`` on the merged domain, against the outer product
    of the independent model (sensitivity 1 under add/remove-one: ``x_ab`` changes by one in one
    cell). Each pick is one exponential mechanism over the edges joining two components; with a
    ``target``, the first ``target_degree`` picks are restricted to edges at the target (fewer if
    the tree completes sooner). Either way there are exactly ``d - 1`` picks of ``eps_em``.
    """
    cols = list(domain.columns)
    d = len(cols)
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    weights = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        x = compressed_marginal(codes, domain, (cols[i], cols[j]), (mappings[i], mappings[j]))
        xhat = total * np.outer(probs[i], probs[j]).ravel()
        weights[k] = float(np.abs(x - xhat).sum())
    left = np.array([i for i, _ in pairs])
    right = np.array([j for _, j in pairs])
    component = np.arange(d)
    t = cols.index(target) if target is not None else -1
    at_target = (left == t) | (right == t)
    chosen: list[tuple[str, str]] = []
    for step in range(d - 1):
        open_ = component[left] != component[right]
        restricted = open_ & at_target if (t >= 0 and step < target_degree) else open_
        if not restricted.any():
            restricted = open_
        cand = np.flatnonzero(restricted)
        k = cand[exponential_mechanism(weights[cand], eps_em, sensitivity=1.0, rng=rng)]
        if releases is not None:
            releases.append(("exponential", eps_em))
        a, b = int(left[k]), int(right[k])
        chosen.append((cols[a], cols[b]))
        component[component == component[a]] = component[b]
    return chosen
