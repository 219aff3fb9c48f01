"""Shared helpers for the marginal methods (MST, AIM) on top of ``mbi`` 2.0 (Private-PGM).

* :func:`mbi_domain` -- our :class:`EncodedDomain` as an ``mbi.Domain``.
* :func:`marginal` -- the exact (private) count table of a clique; pure numpy.
* :func:`measure` -- a Gaussian-noised marginal as an ``mbi.LinearMeasurement``.
* :func:`estimate` -- Private-PGM mirror descent (post-processing of noisy measurements).
* :class:`PgmModel` -- a fitted graphical model with a seeded sampler.

The sampler is our own ancestral sampler over the model's junction tree: it draws every column
i.i.d. from the model's conditional distributions (the ``method="sample"`` strategy of
``mbi.MarkovRandomField.synthetic_data``) but from our ``numpy.random.Generator``, so runs are
reproducible from a seed and no global random state is touched. mbi 1.x's default "round"
sampler broke the model's dependencies (reference notes, tabular.md §4); a test checks that our
synthetic marginals match the model's.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax  # noqa: E402

# Float64 keeps mirror descent stable on large tables (mbi warns about float32 for N > 100K).
# This is a process-wide jax flag set once before mbi is imported; it changes no result semantics.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_compilation_cache", False)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import mbi  # noqa: E402
    from mbi import estimation, junction_tree, marginal_oracles  # noqa: E402

import numpy as np  # noqa: E402

from dpsynth.tabular.methods.base import EncodedDomain  # noqa: E402

Clique = tuple[str, ...]


def mbi_domain(domain: EncodedDomain) -> "mbi.Domain":
    """The ``mbi.Domain`` with the same attribute names and sizes."""
    return mbi.Domain(list(domain.columns), [int(s) for s in domain.sizes])


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


def measure(
    codes: np.ndarray,
    domain: EncodedDomain,
    clique: Sequence[str],
    sigma: float,
    rng: np.random.Generator,
) -> "mbi.LinearMeasurement":
    """Gaussian mechanism on one marginal: counts + N(0, sigma^2) per cell.

    Adding or removing one row changes exactly one cell by 1, so the L2 sensitivity is 1 and this
    is ``GaussianDpEvent(sigma)`` (rho = 1 / (2 sigma^2) zCDP).
    """
    x = marginal(codes, domain, clique)
    y = x + rng.normal(0.0, sigma, size=x.shape)
    return mbi.LinearMeasurement(y, tuple(clique), stddev=float(sigma))


def estimate(
    domain: EncodedDomain,
    measurements: list,
    iters: int,
    warm_start: "mbi.MarkovRandomField | None" = None,
) -> "mbi.MarkovRandomField":
    """Fit a graphical model to noisy measurements (post-processing; reads no private data).

    The total is estimated from the noisy measurements (minimum-variance unbiased), never taken
    from the private row count.
    """
    est = estimation.MirrorDescent()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.estimate(
            mbi_domain(domain),
            measurements,
            iters=int(iters),
            warm_start=warm_start,
        )


def model_marginal(model: "mbi.MarkovRandomField", clique: Sequence[str]) -> np.ndarray:
    """The model's count vector (flattened, C order) for ``clique``."""
    return np.asarray(model.project(tuple(clique)).datavector(flatten=True), dtype=np.float64)


def hypothetical_size_mb(domain: EncodedDomain, cliques: Sequence[Clique]) -> float:
    """Junction-tree size in MB of a model over ``cliques`` (public: depends on the domain only)."""
    return float(junction_tree.hypothetical_model_size(mbi_domain(domain), list(cliques)))


@dataclass
class PgmModel:
    """A fitted Private-PGM model; :meth:`sample` is post-processing."""

    domain: EncodedDomain
    model: "mbi.MarkovRandomField"
    cliques: tuple[Clique, ...]
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def probabilities(self, clique: Sequence[str]) -> np.ndarray:
        """The model's normalised marginal over ``clique`` (shape = the clique's sizes)."""
        counts = np.asarray(self.model.project(tuple(clique)).datavector(flatten=False), dtype=np.float64)
        counts = np.clip(counts, 0.0, None)
        total = counts.sum()
        if total <= 0:
            return np.full(counts.shape, 1.0 / counts.size)
        return counts / total

    def _model_cliques(self) -> list[Clique]:
        cliques = [tuple(c) for c in self.model.cliques] + [tuple(c) for c in self.cliques]
        return cliques or [(c,) for c in self.domain.columns]

    def _junction(self):
        """(junction tree, elimination order, CliqueVector of normalised max-clique marginals).

        When the estimator already holds every maximal clique's marginal (always for MST's tree,
        often for AIM) they are used directly; otherwise one round of message passing computes them.
        """
        cached = self._cache.get("junction")
        if cached is not None:
            return cached
        dom = mbi_domain(self.domain)
        jtree, elimination_order = junction_tree.make_junction_tree(dom, self._model_cliques())
        nodes = [tuple(cl) for cl in jtree.nodes]
        if all(self.model.marginals.supports(cl) for cl in nodes):
            marginals = self.model.marginals
        else:
            potentials = self.model.potentials.expand(nodes)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                marginals = marginal_oracles.message_passing_stable(potentials, 1.0)
        self._cache["junction"] = (jtree, elimination_order, marginals)
        return self._cache["junction"]

    def junction_marginals(self) -> dict[Clique, np.ndarray]:
        """Normalised marginals (numpy, axes in clique order) of the junction tree's maximal cliques."""
        jtree, _, marginals = self._junction()
        out = {}
        for cl in jtree.nodes:
            arr = np.clip(np.asarray(marginals.project(tuple(cl)).datavector(flatten=False), dtype=np.float64), 0, None)
            out[tuple(cl)] = arr / max(arr.sum(), 1e-300)
        return out

    def query_marginals(
        self, queries: Sequence[Clique], rng: np.random.Generator, sample_rows: int = 100_000
    ) -> dict[Clique, np.ndarray]:
        """Normalised flattened model marginals for ``queries`` (post-processing).

        Exact (projection of a junction-tree clique) when a query lies inside one; otherwise
        estimated from ``sample_rows`` model samples, which avoids compiling one jax
        variable-elimination program per query.
        """
        jt = self.junction_marginals()
        out: dict[Clique, np.ndarray] = {}
        missing = []
        for q in queries:
            host = next((cl for cl in jt if set(q) <= set(cl)), None)
            if host is None:
                missing.append(q)
                continue
            keep = tuple(host.index(a) for a in q)
            drop = tuple(i for i in range(len(host)) if i not in keep)
            arr = jt[host].sum(axis=drop) if drop else jt[host]
            remaining = sorted(keep)  # summed-out axes leave the rest in host order
            arr = np.transpose(arr, [remaining.index(k) for k in keep]) if len(keep) > 1 else arr
            out[tuple(q)] = arr.ravel()
        if missing:
            synth = self.sample(sample_rows, rng)
            for q in missing:
                out[tuple(q)] = marginal(synth, self.domain, q) / max(sample_rows, 1)
        return out

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` i.i.d. rows from the model by ancestral sampling on its junction tree."""
        n = int(n)
        d = len(self.domain.columns)
        out = np.zeros((n, d), dtype=np.int64)
        if n == 0:
            return out
        jtree, elimination_order, marginals = self._junction()
        jt_cliques = [set(cl) for cl in jtree.nodes]
        # Columns not in any clique are independent; they still appear in the elimination order
        # only if they were in a clique, so add the rest at the end.
        order = list(elimination_order[::-1])
        order += [c for c in self.domain.columns if c not in order]
        used: list[str] = []
        col_index = {c: i for i, c in enumerate(self.domain.columns)}
        for col in order:
            containing = [cl for cl in jt_cliques if col in cl]
            parents = tuple(p for p in used if any(p in cl for cl in containing))
            if marginals.supports(parents + (col,)):
                marg = np.asarray(
                    marginals.project(parents + (col,)).datavector(flatten=False), dtype=np.float64
                )
            else:
                marg = np.ones(self.domain.sizes[col_index[col]])
            marg = np.clip(marg, 0.0, None)
            size = marg.shape[-1]
            if not parents:
                p = marg / marg.sum() if marg.sum() > 0 else np.full(size, 1.0 / size)
                out[:, col_index[col]] = rng.choice(size, size=n, p=p)
            else:
                parent_sum = marg.sum(axis=-1, keepdims=True)
                cond = np.divide(marg, parent_sum, out=np.full_like(marg, 1.0 / size), where=parent_sum > 0)
                cdf = np.cumsum(cond, axis=-1)
                cdf /= cdf[..., -1:]
                parent_codes = tuple(out[:, col_index[p]] for p in parents)
                row_cdf = cdf[parent_codes]  # (n, size)
                u = rng.random(n)[:, None]
                choice = (row_cdf < u).sum(axis=1)
                out[:, col_index[col]] = np.minimum(choice, size - 1)
            used.append(col)
        return out
