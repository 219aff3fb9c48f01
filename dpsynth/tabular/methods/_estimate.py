"""Private-PGM estimation in numpy: mirror descent on a junction tree, warm-started, stopped on convergence.

Post-processing only: the inputs are noisy measurements, never private data. Solves

    min_mu  sum_m 0.5 * || (P_m mu - y_m) / sigma_m ||^2   over the marginal polytope of the graphical
                                                           model with one potential per maximal
                                                           measured clique,

with Algorithm 1 of McKenna, Sheldon & Miklau (ICML 2019, "Graphical-model based estimation and
inference for differential privacy"): entropic mirror descent on the potentials with an Armijo
step (as ``mbi.estimation.MirrorDescent``). Unlike the jax estimator, nothing is compiled, so a
model whose cliques change every round (AIM) costs no recompilation; a warm start continues from
the previous potentials and the loop stops once the loss improves by less than ``tol`` (relative)
over ``check_every`` iterations.

Measurements on the same clique are merged into one by inverse-variance weighting (their
sufficient statistic for Gaussian noise), so re-measuring a clique adds no work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dpsynth.tabular.methods._junction import Clique, JunctionTree, expand, project


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: ``y = counts(clique) + N(0, sigma^2)`` per cell (``sigma`` may vary per cell)."""

    clique: Clique  # sorted column indices
    y: np.ndarray  # flat, C order over the clique's sorted axes
    sigma: float | np.ndarray


def merge(measurements: Sequence[Measurement]) -> dict[Clique, tuple[np.ndarray, np.ndarray]]:
    """``clique -> (y, 1/sigma^2)``: inverse-variance combination per clique (same loss up to a constant)."""
    acc: dict[Clique, list[np.ndarray]] = {}
    for m in measurements:
        w = np.broadcast_to(1.0 / np.square(np.asarray(m.sigma, dtype=np.float64)), m.y.shape)
        if m.clique in acc:
            acc[m.clique][0] = acc[m.clique][0] + w * m.y
            acc[m.clique][1] = acc[m.clique][1] + w
        else:
            acc[m.clique] = [w * np.asarray(m.y, dtype=np.float64), np.array(w, dtype=np.float64)]
    return {cl: (wy / w, w) for cl, (wy, w) in acc.items()}


def estimate_total(measurements: Sequence[Measurement]) -> float:
    """Minimum-variance unbiased estimate of the row count from the measurements' sums (at least 1)."""
    est, var = [], []
    for m in measurements:
        sig = np.broadcast_to(np.asarray(m.sigma, dtype=np.float64), m.y.shape)
        est.append(float(np.sum(m.y)))
        var.append(float(np.sum(np.square(sig))))
    if not est:
        return 1.0
    w = 1.0 / np.asarray(var)
    return max(1.0, float(np.average(est, weights=w)))


@dataclass
class GraphicalModel:
    """Potentials on maximal measured cliques and the calibrated junction tree (post-processing)."""

    sizes: tuple[int, ...]
    cliques: list[Clique]  # potentials' cliques (maximal measured cliques)
    potentials: dict[Clique, np.ndarray]
    total: float
    tree: JunctionTree
    probabilities: list[np.ndarray] = field(default_factory=list)  # normalised node marginals
    iterations: int = 0  # mirror-descent iterations run by the fit that made this model
    step: float = 0.0  # the step size mirror descent ended with (a warm start continues from it)

    def node_marginals(self) -> list[np.ndarray]:
        """Count tables (summing to ``total``) of the junction tree's nodes."""
        return [self.total * p for p in self.probabilities]

    def marginal(self, clique: Sequence[int]) -> np.ndarray | None:
        """Count table of ``clique`` (sorted axes) if it lies inside one node, else None."""
        cl = tuple(sorted(clique))
        try:
            h = self.tree.host(cl)
        except KeyError:
            return None
        return self.total * project(self.probabilities[h], self.tree.nodes[h], cl)


def maximal(cliques: Sequence[Clique]) -> list[Clique]:
    """Cliques not strictly contained in another (deduplicated, deterministic order)."""
    uniq = sorted(set(cliques), key=lambda c: (-len(c), c))
    out: list[Clique] = []
    for c in uniq:
        if not any(set(c) <= set(o) for o in out):
            out.append(c)
    return out


def _calibrate(tree: JunctionTree, potentials: dict[Clique, np.ndarray], host: dict[Clique, int]) -> list[np.ndarray]:
    node_pots = [np.zeros(tree.shape(node)) for node in tree.nodes]
    for cl, th in potentials.items():
        h = host[cl]
        node_pots[h] = node_pots[h] + expand(th, cl, tree.nodes[h])
    return tree.calibrate(node_pots)


def mirror_descent(
    sizes: Sequence[int],
    measurements: Sequence[Measurement],
    *,
    total: float | None = None,
    warm_start: GraphicalModel | None = None,
    max_iters: int = 1000,
    tol: float = 1e-5,
    check_every: int = 25,
    extra_cliques: Sequence[Clique] = (),
) -> tuple[GraphicalModel, int]:
    """Fit a graphical model to ``measurements``; returns ``(model, iterations run)``.

    ``total`` defaults to :func:`estimate_total` of the measurements. ``extra_cliques`` are added to
    the model structure with zero potential (unmeasured). Stops after ``max_iters`` or when the loss
    improved by at most ``tol * loss`` over the last ``check_every`` iterations.
    """
    sizes = tuple(int(s) for s in sizes)
    merged = merge(measurements)
    total = estimate_total(measurements) if total is None else max(float(total), 1.0)
    cliques = maximal(list(merged) + [tuple(sorted(c)) for c in extra_cliques])
    if not cliques:
        cliques = [(i,) for i in range(len(sizes))]
    tree = JunctionTree.build(sizes, cliques)
    host = {cl: tree.host(cl) for cl in cliques}
    route = {m: next(c for c in cliques if set(m) <= set(c)) for m in merged}
    shape = lambda cl: tuple(sizes[v] for v in cl)  # noqa: E731
    theta = {cl: np.zeros(shape(cl)) for cl in cliques}
    if warm_start is not None:
        for old, th in warm_start.potentials.items():
            target = next((c for c in cliques if set(old) <= set(c)), None)
            if target is not None:
                theta[target] = theta[target] + expand(th, old, target)
    ys = {m: (y.reshape(shape(m)), w.reshape(shape(m))) for m, (y, w) in merged.items()}
    lip = {}
    for m, (_, w) in ys.items():
        c = route[m]
        lip[c] = lip.get(c, 0.0) + float(w.max()) * math.prod(shape(c)) / math.prod(shape(m))
    L = max(lip.values()) if lip else 1.0
    alpha = 2.0 / (L * total)
    if warm_start is not None and warm_start.step > 0:
        alpha = max(alpha, warm_start.step)  # continue with the step size the last fit reached

    used_nodes = sorted(set(host.values()))

    def marginals_and_loss(th):
        logm = _calibrate(tree, th, host)
        probs = {h: total * logm[h] for h in used_nodes}
        mu = {c: project(probs[host[c]], tree.nodes[host[c]], c) for c in cliques}
        loss = 0.0
        grad = {c: np.zeros(shape(c)) for c in cliques}
        for m, (y, w) in ys.items():
            c = route[m]
            diff = project(mu[c], c, m) - y
            loss += 0.5 * float(np.sum(w * diff * diff))
            grad[c] = grad[c] + expand(w * diff, m, c)
        return logm, mu, loss, grad

    logm, mu, loss, grad = marginals_and_loss(theta)
    it, last_check = 0, loss
    for it in range(1, max_iters + 1):
        theta2 = {c: theta[c] - alpha * grad[c] for c in cliques}
        logm2, mu2, loss2, grad2 = marginals_and_loss(theta2)
        decrease = sum(float(np.sum(grad[c] * (mu[c] - mu2[c]))) for c in cliques)
        if loss - loss2 >= 0.5 * alpha * decrease:
            theta, logm, mu, loss, grad = theta2, logm2, mu2, loss2, grad2
            alpha *= 1.01
        else:
            alpha *= 0.5
        if it % check_every == 0:
            if last_check - loss <= tol * max(loss, 1.0):
                break
            last_check = loss
    model = GraphicalModel(sizes, cliques, theta, total, tree, logm, it, alpha)
    return model, it
