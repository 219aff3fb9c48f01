"""Independent (1-way marginals only) baseline.

Privacy unit: one row; add-or-remove-one. Every column's histogram is released once with
Gaussian noise of L2 sensitivity 1 (a row falls in exactly one cell). The ``d`` releases are
``SelfComposedDpEvent(GaussianDpEvent(sigma), d)`` with sigma from
:func:`dpsynth.accounting.gaussian_noise_multiplier` for ``count=d``. Synthetic rows draw each
column independently from its clipped, normalised noisy histogram (post-processing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from dp_accounting import dp_event
from tqdm.auto import tqdm

from dpsynth.tabular.methods._calibrate import domain_from_plan, domain_parameters, event_epsilon
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.tabular.methods.workload import check_target, target_option


@dataclass
class IndependentModel:
    """Per-column probability vectors; sampling is post-processing."""

    probabilities: list[np.ndarray]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((int(n), len(self.probabilities)), dtype=np.int64)
        for j, p in enumerate(self.probabilities):
            out[:, j] = rng.choice(p.size, size=int(n), p=p)
        return out


def noisy_histogram_probabilities(noisy: np.ndarray) -> np.ndarray:
    """Clip negative noisy counts to 0 and normalise (uniform if nothing is left)."""
    p = np.clip(np.asarray(noisy, dtype=np.float64), 0.0, None)
    total = p.sum()
    return p / total if total > 0 else np.full(p.size, 1.0 / p.size)


class IndependentMethod:
    """Independent 1-way marginals (see module docstring)."""

    name = "independent"

    def __init__(self, target: str | None = None, max_time: float | None = None) -> None:
        # Accepted so ``auto`` passes the same options to every method; the independent model has no
        # dependencies to favour and a fixed cost, so both are recorded and otherwise unused.
        self.target = target_option(target)
        self.max_time = None if max_time is None else float(max_time)

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        from dpsynth.tabular._accounting import gaussian_noise_multiplier

        check_target(domain, self.target)
        d = len(domain.columns)
        sigma = float(gaussian_noise_multiplier(epsilon, delta, count=d))
        event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), d)
        while event_epsilon(event, delta) > epsilon:  # defensive: the ledger must agree
            sigma *= 1.01
            event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), d)
        return MethodPlan(
            method=self.name,
            event=event,
            delta=float(delta),
            parameters={"sigma": sigma, "target": self.target, **domain_parameters(domain)},
            sampling="none",
        )

    def fit(self, codes: np.ndarray, plan: MethodPlan, rng: np.random.Generator, progress: bool = True) -> IndependentModel:
        domain = domain_from_plan(plan, codes)
        sigma = float(plan.parameters["sigma"])
        probs = []
        for j, size in enumerate(tqdm(domain.sizes, desc="independent", disable=not progress, leave=False)):
            counts = np.bincount(codes[:, j], minlength=int(size)).astype(np.float64)
            probs.append(noisy_histogram_probabilities(counts + rng.normal(0.0, sigma, size=counts.shape)))
        return IndependentModel(probs)
