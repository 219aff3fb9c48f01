"""Noise calibration: from a target (epsilon, delta) and public parameters to mechanism parameters.

Every helper searches (bisection in log space) with the same accountants that compute ledger
charges (a coarser but still pessimistic PLD grid during the search), then **re-checks** the result
with :func:`~dpsynth.accounting.accountants.compute_charge` and nudges it toward more privacy until
the verified epsilon is ``<= target``. A returned parameter therefore never over-spends.
"""

from __future__ import annotations

import math
from typing import Callable

from dp_accounting import dp_event

from dpsynth.accounting.accountants import compute_charge
from dpsynth.accounting.events import ExponentialMechanismDpEvent
from dpsynth.errors import DpsynthError

EventOf = Callable[[float], dp_event.DpEvent]


class CalibrationError(DpsynthError, ValueError):
    """No parameter in the search range meets the target."""


def _check_target(epsilon: float, delta: float) -> None:
    if isinstance(epsilon, bool) or not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"target epsilon must be a finite number > 0, got {epsilon!r}")
    if isinstance(delta, bool) or not (isinstance(delta, (int, float)) and 0 <= delta < 1):
        raise ValueError(f"target delta must be in [0, 1), got {delta!r}")


def _eps(event_of: EventOf, param: float, delta: float, fast: bool) -> float:
    return compute_charge(event_of(param), delta, fast=fast).epsilon


def _search(
    event_of: EventOf, epsilon: float, delta: float, lo: float, hi: float, rel_tol: float, *, increasing: bool
) -> float:
    """The parameter at the privacy edge: for ``increasing`` (eps grows with p) the largest ``p`` in
    [lo, hi] with eps(event_of(p)) <= epsilon, otherwise the smallest such ``p``."""
    fits = lambda p, fast=True: _eps(event_of, p, delta, fast) <= epsilon  # noqa: E731
    safe_end, risky_end = (lo, hi) if increasing else (hi, lo)
    if not fits(safe_end):
        raise CalibrationError(f"even parameter {safe_end:g} does not reach epsilon={epsilon:g} at delta={delta:g}")
    if fits(risky_end):
        safe_end = risky_end
    while max(safe_end, risky_end) / min(safe_end, risky_end) > 1 + rel_tol:
        mid = math.sqrt(safe_end * risky_end)
        if fits(mid):
            safe_end = mid
        else:
            risky_end = mid
    # verify with the ledger's own accountants; move toward more privacy until it holds
    step = 1 / (1 + rel_tol) if increasing else 1 + rel_tol
    for _ in range(200):
        if fits(safe_end, False):
            return safe_end
        safe_end *= step
    raise CalibrationError("calibration could not verify its result")  # pragma: no cover


def _smallest_param(event_of: EventOf, epsilon: float, delta: float, lo: float, hi: float, rel_tol: float) -> float:
    """Smallest ``p`` in [lo, hi] with eps(event_of(p)) <= epsilon, for eps decreasing in p."""
    return _search(event_of, epsilon, delta, lo, hi, rel_tol, increasing=False)


def _largest_param(event_of: EventOf, epsilon: float, delta: float, lo: float, hi: float, rel_tol: float) -> float:
    """Largest ``p`` in [lo, hi] with eps(event_of(p)) <= epsilon, for eps increasing in p."""
    return _search(event_of, epsilon, delta, lo, hi, rel_tol, increasing=True)


def gaussian_noise_multiplier(epsilon: float, delta: float, count: int = 1, rel_tol: float = 1e-3) -> float:
    """Smallest ``sigma / sensitivity`` such that ``count`` Gaussian releases are (epsilon, delta)-DP."""
    _check_target(epsilon, delta)
    if delta <= 0:
        raise ValueError("the Gaussian mechanism needs delta > 0")
    if count < 1:
        raise ValueError("count must be >= 1")
    return _smallest_param(
        lambda s: dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(s), count), epsilon, delta, 1e-3, 1e5, rel_tol
    )


def dpsgd_noise_multiplier(
    epsilon: float, delta: float, sample_rate: float, steps: int, rel_tol: float = 1e-3
) -> float:
    """Smallest noise multiplier for ``steps`` Poisson-subsampled Gaussian steps at rate ``sample_rate``."""
    _check_target(epsilon, delta)
    if delta <= 0:
        raise ValueError("DP-SGD needs delta > 0")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return _smallest_param(
        lambda s: dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(sample_rate, dp_event.GaussianDpEvent(s)), steps
        ),
        epsilon,
        delta,
        1e-2,
        1e4,
        rel_tol,
    )


def zcdp_rho(epsilon: float, delta: float, rel_tol: float = 1e-4) -> float:
    """Largest ``rho`` such that rho-zCDP implies (epsilon, delta)-DP (CKS 2020 conversion via RDP)."""
    _check_target(epsilon, delta)
    if delta <= 0:
        raise ValueError("converting zCDP to (epsilon, delta) needs delta > 0")
    return _largest_param(lambda r: dp_event.ZCDpEvent(r), epsilon, delta, 1e-12, max(10.0, epsilon**2), rel_tol)


def exponential_epsilon_per_step(epsilon: float, delta: float, count: int, rel_tol: float = 1e-4) -> float:
    """Largest per-step bounded-range epsilon such that ``count`` steps compose to (epsilon, delta)."""
    _check_target(epsilon, delta)
    if count < 1:
        raise ValueError("count must be >= 1")
    return _largest_param(
        lambda e: dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(e), count),
        epsilon,
        delta,
        1e-9,
        epsilon,
        rel_tol,
    )
