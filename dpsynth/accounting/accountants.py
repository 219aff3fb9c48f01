"""Accountants: dp-accounting's PLD and RDP accountants, extended with our events, failing closed.

:func:`epsilon_by_accountant` runs every accountant that supports an event and returns each one's
epsilon at the given delta; :func:`compute_charge` reports the smallest of these valid upper bounds
(each is a valid bound for the same mechanism, so their minimum is too).

Rules enforced here:

* Only the **add-or-remove-one** neighbouring relation is ever used. dp-accounting's RDP accountant
  ignores ``REPLACE_ONE`` for Gaussian events (it under-reports by a factor 2 in sensitivity,
  google/differential-privacy#378), so replace-one proofs must put the doubled sensitivity into the
  event itself and the ledger refuses any other relation.
* An event no accountant supports raises :class:`UnsupportedEventError`; it is never counted as zero.
* A negative or NaN RDP value or epsilon is an error, not zero (dp-accounting logs a warning and
  returns 0 for negative RDP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from dp_accounting import dp_event, privacy_accountant
from dp_accounting.pld import pld_privacy_accountant, privacy_loss_distribution
from dp_accounting.pld.common import DifferentialPrivacyParameters
from dp_accounting.rdp import rdp_privacy_accountant

from dpsynth.accounting.events import ApproxDpEvent, ExponentialMechanismDpEvent, PureDpEvent
from dpsynth.errors import DpsynthError

ADD_OR_REMOVE_ONE = privacy_accountant.NeighboringRelation.ADD_OR_REMOVE_ONE

#: dp-accounting's default RDP orders plus a few large ones, so that very small per-event
#: privacy losses (tiny rho) do not fall off the grid. Larger grids only make the bound tighter.
RDP_ORDERS: tuple[float, ...] = tuple(rdp_privacy_accountant.DEFAULT_RDP_ORDERS) + (2048.0, 4096.0, 8192.0)

#: PLD value discretisation interval used for ledger charges (pessimistic estimate: valid bound).
PLD_DISCRETIZATION = 1e-4
#: Coarser interval used while searching during calibration (also a valid, pessimistic bound).
PLD_DISCRETIZATION_FAST = 1e-3
#: When the RDP bound already exceeds this epsilon, the PLD (whose memory grows with the privacy
#: loss) is not built: a tighter bound on an epsilon this large changes no decision, and building
#: the PLD of a nearly non-private mechanism can exhaust memory.
PLD_SKIP_ABOVE_RDP_EPSILON = 50.0


class UnsupportedEventError(DpsynthError, ValueError):
    """No accountant understands the event: it is refused, never counted as zero."""


class AccountingError(DpsynthError, ArithmeticError):
    """An accountant produced an invalid number (negative RDP, NaN epsilon, ...)."""


class DpsynthRdpAccountant(rdp_privacy_accountant.RdpAccountant):
    """RDP accountant that also understands bounded-range and pure-DP events.

    * ``ExponentialMechanismDpEvent(eps)`` -> ``ZCDpEvent(eps**2 / 8)`` (bounded range, Cesar & Rogers 2021).
    * ``PureDpEvent(eps)`` -> ``ZCDpEvent(eps**2 / 2)`` (Bun & Steinke 2016).
    """

    def __init__(self) -> None:
        super().__init__(orders=RDP_ORDERS, neighboring_relation=ADD_OR_REMOVE_ONE)

    def _maybe_compose(self, event: dp_event.DpEvent, count: int, do_compose: bool):  # type: ignore[override]
        if isinstance(event, ExponentialMechanismDpEvent):
            return super()._maybe_compose(dp_event.ZCDpEvent(event.epsilon**2 / 8.0), count, do_compose)
        if isinstance(event, PureDpEvent) or (isinstance(event, ApproxDpEvent) and event.delta == 0):
            return super()._maybe_compose(dp_event.ZCDpEvent(event.epsilon**2 / 2.0), count, do_compose)
        return super()._maybe_compose(event, count, do_compose)  # ApproxDpEvent(delta>0): unsupported

    def checked_epsilon(self, target_delta: float) -> float:
        """``get_epsilon`` that treats negative RDP values as an error instead of zero."""
        rdp = np.asarray(self._rdp)
        if np.any(np.isnan(rdp)) or np.any(rdp < 0):
            raise AccountingError("RDP accountant produced negative or NaN Renyi divergences")
        return float(self.get_epsilon(target_delta))


class DpsynthPldAccountant(pld_privacy_accountant.PLDAccountant):
    """PLD accountant that also understands bounded-range, pure-DP and (epsilon, delta) black boxes.

    All are composed as the worst-case PLD of an ``(eps, delta)``-DP mechanism
    (``from_privacy_parameters``), which is valid for any such mechanism; an ``eps``-bounded-range
    mechanism is ``eps``-DP.
    """

    def __init__(self, value_discretization_interval: float = PLD_DISCRETIZATION) -> None:
        super().__init__(ADD_OR_REMOVE_ONE, value_discretization_interval=value_discretization_interval)

    def _maybe_compose(self, event: dp_event.DpEvent, count: int, do_compose: bool):  # type: ignore[override]
        if isinstance(event, (ExponentialMechanismDpEvent, PureDpEvent, ApproxDpEvent)):
            event_delta = float(getattr(event, "delta", 0.0))
            if do_compose and (event.epsilon > 0 or event_delta > 0) and count > 0:
                single = privacy_loss_distribution.from_privacy_parameters(
                    DifferentialPrivacyParameters(event.epsilon, event_delta),
                    value_discretization_interval=self._value_discretization_interval,
                )
                self._pld = self._pld.compose(single.self_compose(count) if count > 1 else single)
            return None
        return super()._maybe_compose(event, count, do_compose)


AccountantFactory = Callable[[], privacy_accountant.PrivacyAccountant]

#: The accountants a charge is computed with, by the name written in the ledger.
ACCOUNTANTS: dict[str, AccountantFactory] = {
    "pld": lambda: DpsynthPldAccountant(PLD_DISCRETIZATION),
    "rdp": DpsynthRdpAccountant,
}
_FAST_ACCOUNTANTS: dict[str, AccountantFactory] = {
    "pld": lambda: DpsynthPldAccountant(PLD_DISCRETIZATION_FAST),
    "rdp": DpsynthRdpAccountant,
}


def basic_composition(event: dp_event.DpEvent) -> tuple[float, float] | None:
    """``(sum of epsilons, sum of deltas)`` of a tree of pure / approximate DP black boxes.

    ``None`` when the tree holds any other kind of event. ``ExponentialMechanismDpEvent(e)`` and
    ``PureDpEvent(e)`` are ``(e, 0)``-DP, ``ApproxDpEvent(e, d)`` is ``(e, d)``-DP,
    ``LaplaceDpEvent(b)`` is ``(1/b, 0)``-DP, ``NoOpDpEvent`` is ``(0, 0)``. By basic composition the
    tree is ``(sum e, sum d)``-DP, valid at every delta >= ``sum d`` (including delta = 0 for pure trees).
    """
    if isinstance(event, dp_event.NoOpDpEvent):
        return 0.0, 0.0
    if isinstance(event, (ExponentialMechanismDpEvent, PureDpEvent)):
        return float(event.epsilon), 0.0
    if isinstance(event, ApproxDpEvent):
        return float(event.epsilon), float(event.delta)
    if isinstance(event, dp_event.LaplaceDpEvent):
        return (math.inf if event.noise_multiplier == 0 else 1.0 / event.noise_multiplier), 0.0
    if isinstance(event, dp_event.SelfComposedDpEvent):
        inner = basic_composition(event.event)
        return None if inner is None else (inner[0] * event.count, inner[1] * event.count)
    if isinstance(event, dp_event.ComposedDpEvent):
        parts = [basic_composition(e) for e in event.events]
        if any(p is None for p in parts):
            return None
        return float(sum(p[0] for p in parts)), float(sum(p[1] for p in parts))
    return None


def _epsilon_of(accountant: privacy_accountant.PrivacyAccountant, delta: float) -> float:
    if isinstance(accountant, DpsynthRdpAccountant):
        eps = accountant.checked_epsilon(delta)
    else:
        eps = float(accountant.get_epsilon(delta))
    if math.isnan(eps) or eps < 0:
        raise AccountingError(f"accountant {type(accountant).__name__} returned epsilon={eps}")
    return eps


#: Above this many compositions of approximate-DP black boxes the PLD is not built when basic
#: composition applies (a crafted ledger with count 1e5 asked the PLD for a 5.8 GiB array).
PLD_MAX_APPROX_DP_COMPOSITIONS = 1000


def approx_dp_compositions(event: dp_event.DpEvent) -> int:
    """How many times approximate-DP black boxes (``ApproxDpEvent`` with delta > 0) are composed in
    ``event`` (counts of enclosing self-compositions multiplied)."""
    if isinstance(event, ApproxDpEvent):
        return 1 if event.delta > 0 else 0
    if isinstance(event, dp_event.SelfComposedDpEvent):
        return int(event.count) * approx_dp_compositions(event.event)
    if isinstance(event, dp_event.ComposedDpEvent):
        return sum(approx_dp_compositions(e) for e in event.events)
    return 0


def epsilon_by_accountant(
    event: dp_event.DpEvent,
    delta: float,
    accountants: Sequence[str] | None = None,
    *,
    fast: bool = False,
) -> dict[str, float]:
    """Epsilon at ``delta`` from every accountant that supports ``event``.

    Accountants: ``pld`` and ``rdp`` (dp-accounting, extended), and ``basic`` (basic composition,
    only for trees of pure / approximate DP black boxes; see :func:`basic_composition`).

    Args:
        event: the privacy event (add-or-remove-one relation).
        delta: target delta in [0, 1).
        accountants: restrict to these names (``"pld"``, ``"rdp"``); default all.
        fast: use a coarser (still pessimistic, still valid) PLD grid; for calibration searches.

    Raises:
        UnsupportedEventError: when no requested accountant supports the event.
    """
    if not (0.0 <= delta < 1.0) or math.isnan(delta):
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    table = _FAST_ACCOUNTANTS if fast else ACCOUNTANTS
    names = list(accountants) if accountants is not None else [*table, "basic"]
    unknown = [n for n in names if n not in table and n != "basic"]
    if unknown:
        raise ValueError(f"unknown accountant(s) {unknown}; choose from {sorted([*table, 'basic'])}")
    out: dict[str, float] = {}
    if "basic" in names:
        basic = basic_composition(event)
        if basic is not None and basic[1] <= delta:
            out["basic"] = basic[0]
    # RDP first: it is cheap and tells whether the PLD is worth (and safe) building.
    for name in sorted((n for n in names if n != "basic"), key=lambda n: n != "rdp"):
        accountant = table[name]()
        if not accountant.supports(event):
            continue
        if name == "pld" and delta > 0 and out.get("rdp", 0.0) > PLD_SKIP_ABOVE_RDP_EPSILON:
            continue
        if name == "pld" and "basic" in out and approx_dp_compositions(event) > PLD_MAX_APPROX_DP_COMPOSITIONS:
            continue  # its PLD grows with the count (GiBs at 1e5); basic composition already bounds it
        accountant.compose(event)
        out[name] = _epsilon_of(accountant, delta)
    if not out:
        raise UnsupportedEventError(
            f"no accountant among {names} supports event {type(event).__name__}; refusing to count it"
        )
    return out


@dataclass(frozen=True)
class Stage:
    """One stage of a call (e.g. domain discovery, then training) with its share of delta."""

    name: str
    event: dp_event.DpEvent
    delta: float


@dataclass(frozen=True)
class Charge:
    """The privacy charge of one call: the smallest valid epsilon at ``delta``.

    ``by_accountant`` holds every bound that was computed (``pld``, ``rdp``, ``basic`` on the whole
    composed event; ``stages`` = the sum of the stages' own charges when the call has stages, valid
    by basic composition because the stage deltas add up to at most ``delta``). ``accountant`` names
    the one that gave the minimum.
    """

    epsilon: float
    delta: float
    by_accountant: dict[str, float] = field(default_factory=dict)
    accountant: str = ""


def composed_event(stages: Sequence[Stage]) -> dp_event.DpEvent:
    """The ``ComposedDpEvent`` of the stages' events, in order."""
    return dp_event.ComposedDpEvent([s.event for s in stages])


def compute_charge(
    event: dp_event.DpEvent,
    delta: float,
    stages: Sequence[Stage] | None = None,
    *,
    fast: bool = False,
) -> Charge:
    """The charge of ``event`` at ``delta``: the minimum over PLD, RDP, basic and (with stages) stages.

    When ``stages`` are given, ``event`` must equal :func:`composed_event` of them and their deltas
    must add up to at most ``delta``.
    """
    by = epsilon_by_accountant(event, delta, fast=fast)
    if stages:
        if composed_event(stages) != event:
            raise ValueError("the stages do not compose to the charged event")
        if sum(s.delta for s in stages) > delta * (1 + 1e-12):
            raise ValueError("the stage deltas add up to more than the call's delta")
        total = 0.0
        for s in stages:
            total += min(epsilon_by_accountant(s.event, s.delta, fast=fast).values())
        by["stages"] = total
    by = dict(sorted(by.items()))
    name = min(by, key=lambda k: by[k])
    return Charge(epsilon=by[name], delta=float(delta), by_accountant=by, accountant=name)


def epsilon_profile(event: dp_event.DpEvent, deltas: Sequence[float], accountant: str | None = None) -> list[tuple[float, float]]:
    """``[(delta, epsilon)]`` for each delta, using one accountant or the minimum over all."""
    out = []
    for d in deltas:
        by = epsilon_by_accountant(event, d, None if accountant is None else [accountant])
        out.append((float(d), min(by.values())))
    return out
