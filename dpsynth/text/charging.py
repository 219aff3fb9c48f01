"""Step "charge" of every text call: one ledger entry, written before any private text is read.

Kept as one small call so it converts directly to ``ledger.spend(plan, ...)`` once that exists.
Raises :class:`~dpsynth.accounting.BudgetExceededError` with the ledger unchanged when the budget
cannot afford the call.
"""

from __future__ import annotations

from typing import Any

from dp_accounting import dp_event

from dpsynth.accounting import Ledger, LedgerFile, PrivacyBudget
from dpsynth.text.privacy import NEIGHBOURING_RELATION, PRIVACY_UNIT


def charge_before_reading(
    ledger: Ledger | LedgerFile | None,
    budget: PrivacyBudget,
    *,
    operation: str,
    mechanism: str,
    event: dp_event.DpEvent,
    sampling: str,
    parameters: dict[str, Any],
    generator_model: dict[str, Any],
    source_name: str,
) -> tuple[Ledger | LedgerFile, dict[str, Any]]:
    """Charge ``event`` at ``budget.delta`` (a new in-memory ledger when ``ledger`` is None)."""
    if ledger is None:
        ledger = Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=source_name)
    entry = ledger.charge(
        operation=operation,
        mechanism=mechanism,
        delta=budget.delta,
        event=event,
        sampling=sampling,
        parameters=parameters,
        provenance={"generator_model": generator_model, "neighbouring_relation_proved": NEIGHBOURING_RELATION},
        limit=budget,
    )
    return ledger, entry
