"""Fit a zCDP-parametrised event family into an (epsilon, delta) budget, checked by our accountants.

The marginal methods are designed in zCDP (rho); the ledger charges events with dp-accounting's
PLD / RDP accountants. Calibration lives in :mod:`dpsynth.accounting.calibration`: the budget's
zCDP rho is :func:`dpsynth.accounting.calibration.zcdp_rho` (a bisection verified with the ledger's
own :func:`~dpsynth.accounting.accountants.compute_charge`), and a plain ``ZCDpEvent`` family is
exactly that. For a composed family (MST's Gaussians and selections) :func:`fit_rho` is a thin
wrapper: it starts from that rho and shrinks it until ``compute_charge`` -- the ledger's charge --
of the family's event is at most the target, so the ledger can never charge more than the plan
was calibrated for. (``dpsynth.accounting.calibration`` has no public "largest parameter of an
event family" search yet; its private ``_largest_param`` is that function.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from dp_accounting.dp_event import DpEvent, ZCDpEvent

from dpsynth.accounting import calibration
from dpsynth.accounting.accountants import compute_charge

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan


def event_epsilon(event: DpEvent, delta: float, *, fast: bool = False) -> float:
    """The epsilon the ledger charges for ``event`` at ``delta`` (min over our accountants)."""
    return compute_charge(event, delta, fast=fast).epsilon


def fit_rho(
    epsilon: float,
    delta: float,
    build_event: Callable[[float], DpEvent],
    *,
    shrink: float = 0.995,
    max_tries: int = 2000,
) -> tuple[float, DpEvent]:
    """The largest rho (on a geometric grid below ``calibration.zcdp_rho(epsilon, delta)``) whose
    event the ledger charges at most ``epsilon``.

    Returns ``(rho, event)`` with ``event_epsilon(event, delta) <= epsilon``.
    """
    rho = float(calibration.zcdp_rho(epsilon, delta))
    event = build_event(rho)
    if event == ZCDpEvent(rho):  # calibration.zcdp_rho already verified this exact event
        return rho, event
    for _ in range(max_tries):
        event = build_event(rho)
        if event_epsilon(event, delta, fast=True) <= epsilon and event_epsilon(event, delta) <= epsilon:
            return rho, event
        rho *= shrink
    raise calibration.CalibrationError(f"could not fit the event family into epsilon={epsilon}, delta={delta}")


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
    if codes is not None:
        if codes.ndim != 2 or codes.shape[1] != len(domain.columns):
            raise ValueError(f"codes must have shape (n, {len(domain.columns)}), got {codes.shape}")
        if codes.size and (codes.min() < 0 or np.any(codes.max(axis=0) >= np.asarray(domain.sizes))):
            raise ValueError("codes fall outside the encoded domain")
    return domain
