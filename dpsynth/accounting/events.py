"""Privacy events: dp-accounting's ``DpEvent`` classes plus the ones dp-accounting lacks.

Every DP step of every dpsynth mechanism is described as a ``DpEvent`` tree. dp-accounting 0.6.0
has no event for the exponential mechanism or for a generic pure-DP black box, so we add them here
as frozen attrs subclasses of ``dp_event.DpEvent`` (the library's own extension contract). The
accountants in :mod:`dpsynth.accounting.accountants` understand them; dp-accounting's stock
accountants report ``supports() == False`` for them, so an event nobody understands is refused,
never counted as zero.

All events are stated under the **add-or-remove-one** neighbouring relation of the ledger's privacy
unit: a noise multiplier is ``sigma / sensitivity`` where the sensitivity is the largest change when
one unit is added or removed.
"""

from __future__ import annotations

import attr
from dp_accounting import dp_event


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ExponentialMechanismDpEvent(dp_event.DpEvent):
    """One run of an ``epsilon``-bounded-range mechanism.

    The exponential mechanism with utility sensitivity ``Delta`` at temperature ``tau``
    (sampling from ``softmax(u / tau)``), Gumbel noisy max, and DP softmax token sampling whose
    per-coordinate logit change is at most ``Delta`` are all ``epsilon``-bounded-range with
    ``epsilon = 2 * Delta / tau`` (Durfee & Rogers 2019; Cesar & Rogers 2021).

    Accounting: bounded range ``epsilon`` implies ``epsilon**2 / 8``-zCDP (Cesar & Rogers 2021,
    Lemma 3.2), used by the RDP accountant; and pure ``epsilon``-DP, used by the PLD accountant.
    """

    epsilon: float


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PureDpEvent(dp_event.DpEvent):
    """A black-box ``epsilon``-DP mechanism (pure DP, delta = 0).

    Accounting: ``epsilon**2 / 2``-zCDP for RDP (Bun & Steinke 2016, Prop. 1.4), and the
    worst-case pure-DP privacy loss distribution for PLD.
    """

    epsilon: float


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ApproxDpEvent(dp_event.DpEvent):
    """A black-box ``(epsilon, delta)``-DP mechanism.

    Accounting: the worst-case privacy loss distribution of an ``(epsilon, delta)``-DP mechanism
    (Kairouz, Oh & Viswanath 2015; ``from_privacy_parameters``) for PLD, which gives optimal
    composition of such mechanisms. RDP cannot represent ``delta > 0`` and refuses it (with
    ``delta == 0`` it is treated as :class:`PureDpEvent`).
    """

    epsilon: float
    delta: float


#: Every event class a ledger may contain, by class name. Deserialisation goes through this
#: whitelist only; nothing else is ever instantiated from a file.
EVENT_TYPES: dict[str, type[dp_event.DpEvent]] = {
    cls.__name__: cls
    for cls in (
        dp_event.NoOpDpEvent,
        dp_event.NonPrivateDpEvent,
        dp_event.GaussianDpEvent,
        dp_event.LaplaceDpEvent,
        dp_event.ZCDpEvent,
        dp_event.SelfComposedDpEvent,
        dp_event.ComposedDpEvent,
        dp_event.PoissonSampledDpEvent,
        ExponentialMechanismDpEvent,
        PureDpEvent,
        ApproxDpEvent,
    )
}
