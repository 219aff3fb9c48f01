"""Shared helpers for the marginal methods (MST, AIM): Private-PGM in plain numpy.

* :func:`marginal` -- the exact (private) count table of a clique; the one place the marginal
  methods read private data.
* :func:`measure` -- a Gaussian-noised marginal (:class:`~._estimate.Measurement`).
* :func:`estimate` -- Private-PGM mirror descent (post-processing of noisy measurements), see
  :mod:`._estimate`: warm-startable, stopped on a convergence test, nothing to compile.
* :class:`PgmModel` -- a fitted graphical model with a seeded sampler.

The sampler (:func:`._junction.sample_rows`) draws columns in reverse elimination order from the
calibrated junction tree with our ``numpy.random.Generator`` (reproducible from a seed, no global
random state). By default it is mbi 2.0's *rounding* sampler (stratified draws within each parent
group), whose 1-way marginals sit below the bootstrap floor; ``method="sample"`` draws i.i.d.
mbi 1.x's "round" sampler broke the model's dependencies (reference notes, tabular.md §4); a test
checks that our synthetic marginals match the model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dpsynth.tabular.methods._estimate import GraphicalModel, Measurement, mirror_descent
from dpsynth.tabular.methods._junction import model_cells, sample_rows
from dpsynth.tabular.methods.base import EncodedDomain

Clique = tuple[str, ...]


def sorted_clique(domain: EncodedDomain, clique: Sequence[str]) -> Clique:
    """``clique`` with its columns in domain order (the axis order of every table here)."""
    pos = {c: i for i, c in enumerate(domain.columns)}
    return tuple(sorted(clique, key=pos.__getitem__))


def indices(domain: EncodedDomain, clique: Sequence[str]) -> tuple[int, ...]:
    """Sorted column indices of ``clique``."""
    pos = {c: i for i, c in enumerate(domain.columns)}
    return tuple(sorted(pos[c] for c in clique))


def marginal(codes: np.ndarray, domain: EncodedDomain, clique: Sequence[str]) -> np.ndarray:
    """Exact count vector (flattened, C order) of ``clique`` over ``codes``. Reads private data.

    ``codes`` is an int code array or a :class:`~dpsynth.tabular.private_table.PrivateCounts`."""
    if not isinstance(codes, np.ndarray) and hasattr(codes, "counts"):  # scale-out backends
        return np.asarray(codes.counts(tuple(clique)), dtype=np.float64)
    idx = [domain.columns.index(c) for c in clique]
    shape = tuple(int(domain.sizes[i]) for i in idx)
    if not idx:
        return np.array([float(codes.shape[0])])
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)


def synthetic_counts(synth: np.ndarray, domain: EncodedDomain, clique: Sequence[str]) -> np.ndarray:
    """Count vector (flattened, C order) of ``clique`` over *synthetic* rows (post-processing only;
    private data goes through :func:`marginal`)."""
    idx = [domain.columns.index(c) for c in clique]
    flat = synth[:, idx[0]].astype(np.int64)
    cells = int(domain.sizes[idx[0]])
    for i in idx[1:]:
        size = int(domain.sizes[i])
        flat = flat * size + synth[:, i]
        cells *= size
    return np.bincount(flat, minlength=cells).astype(np.float64)


def measure(
    codes: np.ndarray,
    domain: EncodedDomain,
    clique: Sequence[str],
    sigma: float,
    rng: np.random.Generator,
) -> Measurement:
    """Gaussian mechanism on one marginal: counts + N(0, sigma^2) per cell.

    Adding or removing one row changes exactly one cell by 1, so the L2 sensitivity is 1 and this
    is ``GaussianDpEvent(sigma)`` (rho = 1 / (2 sigma^2) zCDP). The table is over the clique's
    columns in domain order.
    """
    cl = sorted_clique(domain, clique)
    x = marginal(codes, domain, cl)
    y = x + rng.normal(0.0, sigma, size=x.shape)
    return Measurement(indices(domain, cl), y, float(sigma))


def estimate(
    domain: EncodedDomain,
    measurements: list[Measurement],
    iters: int = 1000,
    warm_start: "GraphicalModel | None" = None,
    tol: float = 1e-5,
    total: float | None = None,
    extra_cliques: Sequence[Sequence[str]] = (),
) -> GraphicalModel:
    """Fit a graphical model to noisy measurements (post-processing; reads no private data).

    ``total`` defaults to the minimum-variance unbiased estimate from the measurements' sums; it is
    never the private row count.
    """
    model, _ = mirror_descent(
        domain.sizes,
        measurements,
        total=total,
        warm_start=warm_start,
        max_iters=int(iters),
        tol=float(tol),
        extra_cliques=[indices(domain, c) for c in extra_cliques],
    )
    return model


def hypothetical_size_mb(domain: EncodedDomain, cliques: Sequence[Clique]) -> float:
    """Junction-tree size in MB (8-byte cells) of a model over ``cliques`` (public: domain only).

    Same value as ``mbi.junction_tree.hypothetical_model_size`` (a test checks it).
    """
    return model_cells(domain.sizes, [indices(domain, c) for c in cliques]) * 8 / 2**20


@dataclass
class PgmModel:
    """A fitted graphical model over ``domain``; :meth:`sample` is post-processing."""

    domain: EncodedDomain
    model: GraphicalModel
    cliques: tuple[Clique, ...]

    @property
    def total(self) -> float:
        return float(self.model.total)

    def probabilities(self, clique: Sequence[str]) -> np.ndarray:
        """The model's normalised marginal over ``clique`` (axes in the order given)."""
        cl = sorted_clique(self.domain, clique)
        counts = self.model.marginal(indices(self.domain, cl))
        if counts is None:  # not inside one junction-tree node: estimate from a large sample
            synth = self.sample(200_000, np.random.default_rng(0))
            counts = marginal(synth, self.domain, cl).reshape([self.domain.sizes[self.domain.columns.index(c)] for c in cl])
        counts = np.clip(counts, 0.0, None)
        counts = np.transpose(counts, [cl.index(c) for c in clique])
        total = counts.sum()
        return counts / total if total > 0 else np.full(counts.shape, 1.0 / counts.size)

    def query_marginals(
        self, queries: Sequence[Clique], rng: np.random.Generator, sample_rows_n: int = 100_000
    ) -> dict[Clique, np.ndarray]:
        """Normalised flattened model marginals for ``queries`` (each in domain order; post-processing).

        Exact when a query lies inside a junction-tree node; otherwise estimated from
        ``sample_rows_n`` rows drawn with the rounding sampler.
        """
        out: dict[Clique, np.ndarray] = {}
        missing = []
        for q in queries:
            counts = self.model.marginal(indices(self.domain, q))
            if counts is None:
                missing.append(q)
                continue
            counts = np.clip(counts.ravel(), 0.0, None)
            out[tuple(q)] = counts / max(counts.sum(), 1e-300)
        if missing:
            synth = self.sample(sample_rows_n, rng)
            for q in missing:
                out[tuple(q)] = synthetic_counts(synth, self.domain, q) / max(sample_rows_n, 1)
        return out

    def sample(self, n: int, rng: np.random.Generator, method: str = "round") -> np.ndarray:
        """Draw ``n`` rows from the model (rounding sampler by default; ``"sample"`` for i.i.d.)."""
        return sample_rows(self.model.tree, self.model.node_marginals(), int(n), rng, method=method)
