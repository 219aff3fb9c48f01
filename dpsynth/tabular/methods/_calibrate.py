"""Fit a zCDP-parametrised event family into an (epsilon, delta) budget, checked by our accountants.

The marginal methods are designed in zCDP (rho); the ledger charges events with dp-accounting's
PLD / RDP accountants. :func:`fit_rho` starts from ``zcdp_rho(epsilon, delta)`` and shrinks rho
until the *accountant's* epsilon of the method's event is at most the target, so the ledger's
charge can never exceed what the plan was calibrated for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from dp_accounting.dp_event import DpEvent

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan


def event_epsilon(event: DpEvent, delta: float) -> float:
    """The smallest epsilon our accountants give ``event`` at ``delta``."""
    from dpsynth.tabular._accounting import epsilon_by_accountant

    return min(epsilon_by_accountant(event, delta, fast=True).values())


def fit_rho(
    epsilon: float,
    delta: float,
    build_event: Callable[[float], DpEvent],
    *,
    shrink: float = 0.98,
    max_tries: int = 200,
) -> tuple[float, DpEvent]:
    """The largest rho on a geometric grid below ``zcdp_rho(epsilon, delta)`` that fits the budget.

    Returns ``(rho, event)`` with ``event_epsilon(event, delta) <= epsilon``.
    """
    from dpsynth.tabular._accounting import zcdp_rho

    rho = float(zcdp_rho(epsilon, delta))
    for _ in range(max_tries):
        event = build_event(rho)
        if event_epsilon(event, delta) <= epsilon:
            return rho, event
        rho *= shrink
    raise ArithmeticError(f"could not fit the event family into epsilon={epsilon}, delta={delta}")


def domain_parameters(domain: "EncodedDomain") -> dict:
    """The domain as JSON-serialisable plan parameters (``fit`` gets no domain argument)."""
    return {"domain": {"columns": list(domain.columns), "sizes": [int(s) for s in domain.sizes]}}


def domain_from_plan(plan: "MethodPlan", codes=None) -> "EncodedDomain":
    """The :class:`EncodedDomain` stored by :func:`domain_parameters`; checks ``codes`` fit it."""
    from dpsynth.tabular.methods.base import EncodedDomain

    raw = plan.parameters.get("domain")
    if not isinstance(raw, dict):
        raise ValueError("the plan carries no domain; calibrate it with this method first")
    domain = EncodedDomain(tuple(raw["columns"]), tuple(int(s) for s in raw["sizes"]))
    if codes is not None and not isinstance(codes, np.ndarray) and hasattr(codes, "counts"):
        if tuple(codes.columns) != domain.columns or tuple(codes.sizes) != domain.sizes:
            raise ValueError("the private counts are over another domain than the plan's")
    elif codes is not None:
        if codes.ndim != 2 or codes.shape[1] != len(domain.columns):
            raise ValueError(f"codes must have shape (n, {len(domain.columns)}), got {codes.shape}")
        if codes.size and (codes.min() < 0 or np.any(codes.max(axis=0) >= np.asarray(domain.sizes))):
            raise ValueError("codes fall outside the encoded domain")
    return domain
