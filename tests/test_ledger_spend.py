"""``ledger.spend(plan)``: one shape for every private step, the same on a Ledger and a LedgerFile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dp_accounting import dp_event

from dpsynth.accounting import BudgetExceededError, Ledger, LedgerFile, PrivacyBudget, compute_charge
from dpsynth.accounting.ledger import PrivatePlan


@dataclass(frozen=True)
class GaussPlan:
    noise_multiplier: float
    mechanism: str = "gaussian"
    delta: float = 1e-6
    sampling: str = "none"
    stages: tuple = ()
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def event(self):
        return dp_event.GaussianDpEvent(self.noise_multiplier)


def _ledger(kind: str, tmp_path, epsilon: float = 2.0):
    budget = PrivacyBudget(epsilon, 1e-5)
    if kind == "memory":
        return Ledger.create(budget, privacy_unit="row", source_name="s")
    return LedgerFile.create(tmp_path / "shared.ledger.json", budget, privacy_unit="row", source_name="s")


def _entries(ledger):
    return (ledger if isinstance(ledger, Ledger) else ledger.load()).entries


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_spend_charges_before_and_completes_after(kind, tmp_path):
    ledger = _ledger(kind, tmp_path)
    plan = GaussPlan(3.0, parameters={"sigma": 3.0})
    assert isinstance(plan, PrivatePlan)
    seen = []
    with ledger.spend(plan, operation="op", provenance={"who": "test"}) as step:
        seen.append([e["kind"] for e in _entries(ledger)])  # the charge is on record before the block runs
        step.outputs = {"n": 1}
        step.source_fingerprint = "fp"
    assert seen == [["charge"]]
    charge, completion = _entries(ledger)
    assert charge["charge"]["epsilon"] == pytest.approx(compute_charge(plan.event, 1e-6).epsilon, rel=1e-12)
    assert completion["status"] == "completed" and completion["outputs"] == {"n": 1}
    assert completion["source_fingerprint"] == "fp" and completion["completes"] == charge["seq"]


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_spend_refuses_before_the_block_and_changes_nothing(kind, tmp_path):
    ledger = _ledger(kind, tmp_path, epsilon=0.5)
    ran = []
    with pytest.raises(BudgetExceededError):
        with ledger.spend(GaussPlan(1.0), operation="op"):
            ran.append(True)
    assert ran == [] and _entries(ledger) == []


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_spend_records_failure_without_refund_or_message(kind, tmp_path):
    ledger = _ledger(kind, tmp_path)
    with pytest.raises(RuntimeError, match="zebra-quagga"):
        with ledger.spend(GaussPlan(3.0), operation="op"):
            raise RuntimeError("secret value zebra-quagga")
    charge, completion = _entries(ledger)
    assert completion["status"] == "failed" and completion["outputs"] == {"error_type": "RuntimeError"}
    assert "zebra-quagga" not in str(completion)  # an exception message may carry private data: never recorded
    spent = ledger.epsilon_spent
    assert spent == pytest.approx(charge["charge"]["epsilon"])  # no refund


def test_a_shared_ledger_file_backs_a_tabular_call(tmp_path):
    """LedgerFile now has ``remaining`` and ``spend``: a tabular call charges the shared file directly."""
    from dpsynth.tabular import synthesize

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.integers(0, 3, 200).astype(str), "b": rng.integers(0, 2, 200).astype(str)})
    meta = {"row_count": 200, "columns": {"a": {"type": "categorical", "categories": ["0", "1", "2"]},
                                          "b": {"type": "categorical", "categories": ["0", "1"]}}}
    shared = LedgerFile.create(tmp_path / "source.ledger.json", PrivacyBudget(1.5, 1e-5), privacy_unit="row", source_name="t")
    result = synthesize(df, epsilon=1.0, delta=1e-6, metadata=meta, method="independent", ledger=shared, progress=False)
    assert len(result.data) == 200
    on_disk = shared.load()
    assert on_disk.epsilon_spent == pytest.approx(result.ledger.epsilon_spent) and 0.9 < on_disk.epsilon_spent <= 1.0
    with pytest.raises(BudgetExceededError):
        synthesize(df, epsilon=1.0, delta=1e-6, metadata=meta, method="independent", ledger=shared, progress=False)
    assert shared.load().entries == on_disk.entries
