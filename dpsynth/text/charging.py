"""Step "charge" of every text call: one ledger entry, written before any private text is read.

:func:`spend_before_reading` opens ``ledger.spend(plan, ...)`` (the one plan -> spend -> run shape):
it charges the call's event before the block reads private data -- raising
:class:`~dpsynth.accounting.BudgetExceededError` with the ledger unchanged when the budget cannot
afford it -- and records a ``completed`` (or, on an exception, ``failed``) completion on exit.
Nothing is refunded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dp_accounting import dp_event

from dpsynth.accounting import Ledger, LedgerFile, PrivacyBudget
from dpsynth.text.privacy import NEIGHBOURING_RELATION, PRIVACY_UNIT


@dataclass(frozen=True)
class TextChargePlan:
    """What one text call charges (the ledger's ``PrivatePlan`` protocol); public inputs only."""

    mechanism: str
    event: dp_event.DpEvent
    delta: float
    sampling: str
    parameters: dict[str, Any] = field(default_factory=dict)
    stages: tuple = ()


@contextmanager
def spend_before_reading(
    ledger: Ledger | LedgerFile | None,
    budget: PrivacyBudget,
    plan: TextChargePlan,
    *,
    operation: str,
    generator_model: dict[str, Any],
    source_name: str,
) -> Iterator[tuple[Ledger | LedgerFile, Any]]:
    """``with spend_before_reading(...) as (ledger, step):`` -- a new in-memory ledger when ``ledger``
    is None; set ``step.outputs`` and ``step.source_fingerprint`` inside the block."""
    if ledger is None:
        ledger = Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=source_name)
    provenance = {"generator_model": generator_model, "neighbouring_relation_proved": NEIGHBOURING_RELATION}
    with ledger.spend(plan, operation=operation, provenance=provenance, limit=budget) as step:
        yield ledger, step
