"""The reference MST (McKenna, Miklau & Sheldon 2021) on mbi 2.0, for the benchmark only.

mbi 2.0's wheel ships no mechanisms; the authors' ``mechanisms/mst.py`` (private-pgm / mbi repo)
still calls APIs that 2.0 removed (``Domain.attrs``, ``Dataset`` from a DataFrame). This module
re-expresses the same steps on mbi 2.0's API so the benchmark can run the reference in the same
process, on the same encoded codes, as dpsynth's MST. Nothing here is used by the library.

Steps, as in the reference:

1. rho for the budget; sigma = sqrt(3 / (2 rho)) split over the d one-way measurements
   (per measurement sigma * sqrt(d), the reference's unit-norm weights).
2. Compress: values whose noisy count is below 3 sigma_1 share one bin; that bin's measurement is
   the sum divided by sqrt(k) with the matching query weight 1/sqrt(k) (mbi's ``WeightedQuery``,
   the reference's "temporary hack"), so such measurements do not enter mbi's total estimate.
3. Select: a 2,500-iteration ``MirrorDescent`` fit of the 1-way measurements; every pair scored by
   ``||x_ab - model_ab||_1``; d - 1 exponential-mechanism picks of a spanning tree with
   epsilon = sqrt(8 (rho / 3) / (d - 1)).
4. Measure the tree's pairs (sigma * sqrt(d - 1)); 10,000 ``MirrorDescent`` iterations on all
   measurements; ``synthetic_data(rows)`` (mbi 2.0's rounding sampler); merged values drawn back
   uniformly.

One deliberate difference: the total row count (see :func:`reference_mst`'s ``known_total``).

The privacy budget is given as rho (the benchmark passes dpsynth's
``calibration.zcdp_rho(epsilon, delta)``, the rho a plain zCDP event may spend at that budget).
"""

from __future__ import annotations

import itertools

import numpy as np


def _mbi():
    import jax

    jax.config.update("jax_enable_x64", True)  # mbi's own advice for large N; same for every table here
    import mbi

    return mbi


def reference_mst(codes: np.ndarray, sizes, rho: float, rows: int, rng: np.random.Generator,
                  select_iters: int = 2500, final_iters: int = 10_000, known_total: bool = True,
                  outer_scores: bool = False) -> np.ndarray:
    """Synthetic codes (``rows`` x d) from the reference MST at zCDP ``rho``.

    ``known_total=True`` passes mbi the minimum-variance total of the 1-way measurements taken
    *before* compression. The published mechanism passes none, and mbi estimates the total only
    from measurements with an identity query, i.e. from columns that were not compressed; when
    every column is compressed (as on dpsynth's encodings, where every column has a missing/unfit
    code that Adult's complete columns never use) mbi falls back to a total of 1.0 and the tree
    selection and the fit break (Adult, epsilon 1: 3-way TVD 0.164). ``False`` keeps that behaviour.

    ``outer_scores=True`` takes each pair's model marginal in the selection step as the outer
    product of the fitted model's 1-way marginals (the same value: the model there has only 1-way
    cliques) instead of mbi's ``project`` of the pair, which compiles one program per pair shape: on
    42 columns (861 pairs) the published step ran out of memory in LLVM and crashed after ~940 CPU s.
    """
    mbi = _mbi()
    from mbi.marginal_loss import WeightedQuery

    d = codes.shape[1]
    names = [f"c{j}" for j in range(d)]
    domain = mbi.Domain(names, [int(s) for s in sizes])
    data = mbi.Dataset({n: codes[:, j].astype(np.int64) for j, n in enumerate(names)}, domain)
    sigma = np.sqrt(3.0 / (2.0 * rho))

    # 1. one-way measurements
    s1 = sigma * np.sqrt(d)
    noisy = [data.project([n]).datavector() + rng.normal(0.0, s1, size=int(sizes[j])) for j, n in enumerate(names)]

    sums = np.array([y.sum() for y in noisy])
    inv_var = 1.0 / (s1**2 * np.asarray(sizes, dtype=np.float64))
    total = max(1.0, float(np.sum(sums * inv_var) / np.sum(inv_var))) if known_total else None

    # 2. compression
    supports, log1 = [], []
    for j, n in enumerate(names):
        y = noisy[j]
        sup = y >= 3 * s1
        supports.append(sup)
        if sup.all():
            log1.append(mbi.LinearMeasurement(y, (n,), stddev=s1))
            continue
        k = int((~sup).sum())
        y2 = np.append(y[sup], y[~sup].sum() / np.sqrt(k))
        w = np.ones(y2.size)
        w[-1] = 1.0 / np.sqrt(k)
        log1.append(mbi.LinearMeasurement(y2, (n,), stddev=s1, query=WeightedQuery(w)))
    new_sizes = [int(s.sum()) + (0 if s.all() else 1) for s in supports]
    mapped = np.empty_like(codes)
    for j, sup in enumerate(supports):
        m = np.full(sup.size, int(sup.sum()))
        m[sup] = np.arange(int(sup.sum()))
        mapped[:, j] = m[codes[:, j]]
    small = mbi.Domain(names, new_sizes)
    cdata = mbi.Dataset({n: mapped[:, j] for j, n in enumerate(names)}, small)

    # 3. tree selection
    est = mbi.estimation.MirrorDescent().estimate(small, log1, known_total=total, iters=select_iters)
    pairs = list(itertools.combinations(names, 2))
    if outer_scores:
        one = {n: np.asarray(est.project([n]).datavector(), dtype=np.float64) for n in names}
        tot = float(sum(one[names[0]]))
        weights = np.array([
            np.abs(cdata.project(list(p)).datavector() - np.outer(one[p[0]], one[p[1]]).ravel() / tot).sum() for p in pairs
        ])
    else:
        weights = np.array([
            np.abs(cdata.project(list(p)).datavector() - np.asarray(est.project(list(p)).datavector())).sum()
            for p in pairs
        ])
    eps = np.sqrt(8 * (rho / 3.0) / (d - 1)) if d > 1 else 0.0
    comp = list(range(d))

    def find(a: int) -> int:
        while comp[a] != a:
            comp[a] = comp[comp[a]]
            a = comp[a]
        return a

    edges = []
    for _ in range(d - 1):
        open_ = [k for k, (a, b) in enumerate(pairs) if find(names.index(a)) != find(names.index(b))]
        logits = 0.5 * eps * weights[open_]
        p = np.exp(logits - logits.max())
        k = open_[int(rng.choice(len(open_), p=p / p.sum()))]
        a, b = pairs[k]
        edges.append((a, b))
        comp[find(names.index(a))] = find(names.index(b))

    # 4. measure the tree, estimate, sample, undo the compression
    s2 = sigma * np.sqrt(max(d - 1, 1))
    log2 = []
    for a, b in edges:
        x = cdata.project([a, b]).datavector()
        log2.append(mbi.LinearMeasurement(x + rng.normal(0.0, s2, size=x.size), (a, b), stddev=s2))
    model = mbi.estimation.MirrorDescent().estimate(small, log1 + log2, known_total=total, iters=final_iters)
    synth = model.synthetic_data(rows=int(rows)).to_dict()
    out = np.empty((int(rows), d), dtype=np.int64)
    for j, (n, sup) in enumerate(zip(names, supports)):
        col = np.asarray(synth[n])
        kept, extra = np.flatnonzero(sup), np.flatnonzero(~sup)
        merged = col == kept.size
        vals = np.empty(col.size, dtype=np.int64)
        vals[~merged] = kept[np.minimum(col[~merged], max(kept.size - 1, 0))] if kept.size else 0
        if extra.size:
            vals[merged] = rng.choice(extra, int(merged.sum()))
        out[:, j] = vals
    return out
