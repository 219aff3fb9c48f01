"""The numpy Private-PGM pieces: junction-tree size, estimation, samplers (post-processing only)."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from dpsynth.tabular.methods._estimate import Measurement, merge, mirror_descent
from dpsynth.tabular.methods._junction import JunctionTree, model_cells, round_column, sample_rows
from dpsynth.tabular.methods._pgm import PgmModel, estimate, marginal, measure
from dpsynth.tabular.methods.base import EncodedDomain


def chain_codes(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, EncodedDomain]:
    """a -> b -> c chain plus an independent d."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 3, n))
    c = np.where(rng.random(n) < 0.7, b % 2, rng.integers(0, 2, n))
    d = rng.integers(0, 4, n)
    return np.stack([a, b, c, d], axis=1), EncodedDomain(("a", "b", "c", "d"), (3, 3, 2, 4))


def brute_force_marginals(sizes, potentials: dict, clique) -> np.ndarray:
    """Normalised marginal of ``clique`` from the full joint exp(sum of potentials)."""
    d = len(sizes)
    logp = np.zeros(sizes)
    for cl, th in potentials.items():
        shape = [sizes[v] if v in cl else 1 for v in range(d)]
        logp = logp + th.reshape(shape)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    axes = tuple(v for v in range(d) if v not in clique)
    return p.sum(axis=axes)


def test_model_cells_matches_mbi_hypothetical_model_size():
    mbi = pytest.importorskip("mbi")
    from mbi import junction_tree

    rnd = random.Random(0)
    for _ in range(150):
        d = rnd.randint(2, 8)
        cols = [f"c{i}" for i in range(d)]
        sizes = [rnd.randint(1, 9) for _ in cols]
        cliques = [tuple(rnd.sample(range(d), rnd.randint(1, min(3, d)))) for _ in range(rnd.randint(0, 7))]
        ref = junction_tree.hypothetical_model_size(mbi.Domain(cols, sizes), [tuple(cols[i] for i in c) for c in cliques])
        assert model_cells(sizes, cliques) * 8 / 2**20 == pytest.approx(ref)


def test_calibration_gives_exact_marginals_on_a_loopy_model():
    rng = np.random.default_rng(1)
    sizes = (2, 3, 2, 3, 2)
    cliques = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (1, 4)]  # cycles: the tree needs fill-in
    potentials = {c: rng.normal(size=tuple(sizes[v] for v in c)) for c in cliques}
    tree = JunctionTree.build(sizes, cliques)
    node_pots = []
    for node in tree.nodes:
        pot = np.zeros(tuple(sizes[v] for v in node))
        for c, th in potentials.items():
            if tree.host(c) == tree.nodes.index(node):
                shape = [sizes[v] if v in c else 1 for v in node]
                pot = pot + th.reshape(shape)
        node_pots.append(pot)
    logm = tree.calibrate(node_pots)
    for i, node in enumerate(tree.nodes):
        assert np.allclose(logm[i], brute_force_marginals(sizes, potentials, node), atol=1e-10)


def test_mirror_descent_recovers_consistent_measurements_and_warm_start_is_faster():
    codes, dom = chain_codes()
    rng = np.random.default_rng(0)
    ms = [measure(codes, dom, (c,), 1.0, rng) for c in dom.columns]
    ms += [measure(codes, dom, ("a", "b"), 1.0, rng), measure(codes, dom, ("b", "c"), 1.0, rng)]
    model, iters = mirror_descent(dom.sizes, ms, max_iters=3000, tol=1e-7)
    for cl in [("a", "b"), ("b", "c"), ("d",)]:
        exact = marginal(codes, dom, cl)
        fitted = model.marginal(tuple(dom.columns.index(c) for c in cl)).ravel()
        assert np.abs(exact - fitted).sum() / len(codes) < 0.01
    assert model.total == pytest.approx(len(codes), rel=0.01)
    ms.append(measure(codes, dom, ("c", "d"), 1.0, rng))
    _, cold = mirror_descent(dom.sizes, ms, max_iters=3000, tol=1e-7)
    _, warm = mirror_descent(dom.sizes, ms, max_iters=3000, tol=1e-7, warm_start=model)
    assert warm < cold


def test_mirror_descent_agrees_with_mbi():
    mbi = pytest.importorskip("mbi")
    from mbi import estimation

    codes, dom = chain_codes(3000, seed=4)
    rng = np.random.default_rng(2)
    ms = [measure(codes, dom, cl, 30.0, rng) for cl in [("a",), ("b",), ("c",), ("d",), ("a", "b"), ("b", "c"), ("a", "c")]]
    ours = estimate(dom, ms, iters=2000, tol=0.0)
    names = {i: c for i, c in enumerate(dom.columns)}
    ref = estimation.MirrorDescent().estimate(
        mbi.Domain(list(dom.columns), list(dom.sizes)),
        [mbi.LinearMeasurement(m.y, tuple(names[i] for i in m.clique), stddev=m.sigma) for m in ms],
        iters=2000,
    )
    for cl in [("a", "b"), ("b", "c"), ("a", "c")]:
        a = np.asarray(ref.project(cl).datavector(flatten=True))
        b = ours.marginal(tuple(dom.columns.index(c) for c in cl)).ravel()
        assert np.abs(a - b).sum() / a.sum() < 0.005, cl


def test_repeated_measurements_merge_by_inverse_variance():
    y1, y2 = np.array([10.0, 20.0]), np.array([14.0, 16.0])
    merged = merge([Measurement((0,), y1, 1.0), Measurement((0,), y2, 2.0)])
    y, w = merged[(0,)]
    assert np.allclose(w, [1.25, 1.25])
    assert np.allclose(y, (y1 / 1 + y2 / 4) / 1.25)


def test_round_column_hits_the_rescaled_counts_within_one():
    rng = np.random.default_rng(0)
    counts = np.array([0.3, 5.2, 2.5, 0.0, 10.0])
    vals = round_column(counts, 1000, rng)
    hist = np.bincount(vals, minlength=5)
    assert hist.sum() == 1000
    assert np.all(np.abs(hist - 1000 * counts / counts.sum()) < 1.0)


@pytest.fixture(scope="module")
def chain_model():
    codes, dom = chain_codes()
    rng = np.random.default_rng(3)
    ms = [measure(codes, dom, cl, 2.0, rng) for cl in [("a",), ("b",), ("c",), ("d",), ("a", "b"), ("b", "c")]]
    return dom, PgmModel(dom, estimate(dom, ms, iters=2000), (("a", "b"), ("b", "c")))


@pytest.mark.parametrize("method", ["round", "sample"])
def test_samplers_keep_the_model_marginals(chain_model, method):
    dom, model = chain_model
    synth = model.sample(30000, np.random.default_rng(5), method=method)
    for cl in [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")]:
        p = model.probabilities(cl).ravel()
        q = marginal(synth, dom, cl) / len(synth)
        assert 0.5 * np.abs(p - q).sum() < 0.02, (method, cl)


def test_rounding_sampler_one_way_error_is_below_iid_sampling(chain_model):
    dom, model = chain_model
    n = 2000
    errs = {"round": [], "sample": []}
    for seed in range(20):
        for method in errs:
            synth = model.sample(n, np.random.default_rng(seed), method=method)
            errs[method].append(
                np.mean([0.5 * np.abs(model.probabilities((c,)) - marginal(synth, dom, (c,)) / n).sum() for c in dom.columns])
            )
    assert np.mean(errs["round"]) < 0.5 * np.mean(errs["sample"])


def test_sample_rows_from_tree_marginals_is_reproducible(chain_model):
    _, model = chain_model
    a = model.sample(500, np.random.default_rng(9))
    b = model.sample(500, np.random.default_rng(9))
    assert np.array_equal(a, b)
    assert a.shape == (500, 4) and a.dtype.kind == "i"
