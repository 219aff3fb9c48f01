"""One privacy budget per data source, drawn on by every release from it (the owner's source ledgers).

``dpsynth budget init SOURCE --epsilon E --delta D`` creates a signed ledger file for SOURCE in
the owner's dpsynth home (``$DPSYNTH_HOME/budgets/<id>.ledger.json``). Every ``tabular synth`` /
``text synth`` run on SOURCE first charges that ledger **its whole call budget** (an
``ApproxDpEvent(epsilon, delta)``: the call spends at most that, by its own ledger), under the file
lock, before the input is read; a run that would overspend is refused with nothing read. The
sum of the call budgets is a valid bound by basic composition, which holds for adaptively chosen
calls. Each charge names the release it paid for; a run that breaks off after its charge keeps
the charge (``failed`` completion): a budget spent on a failed run is the safe choice.

Which ledger belongs to SOURCE is decided from public facts only: its resolved path, keyed by the
owner's source key (``id = HMAC(source key, path)``), never its content -- a lookup by content
would make whether a run is refused depend on the records. So a *copy* of the data under another
path is another source unless the owner passes ``--ledger`` with the source's ledger file.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpsynth.accounting.budget import PrivacyBudget
from dpsynth.accounting.events import ApproxDpEvent
from dpsynth.accounting.keys import dpsynth_home, load_source_key
from dpsynth.accounting.ledger_file import LedgerFile
from dpsynth.accounting.serialization import LedgerFormatError
from dpsynth.errors import DpsynthError


class SourceBudgetError(DpsynthError, ValueError):
    """A source budget is missing, exists already, or cannot be used."""


@dataclass(frozen=True)
class CallBudgetPlan:
    """The charge a run makes on its source ledger: its whole (epsilon, delta) budget (a PrivatePlan)."""

    epsilon: float
    delta: float
    release: str
    mechanism: str = "one dpsynth call, charged at its whole budget (its own ledger holds the detail)"
    sampling: str = "none"
    stages: tuple = ()

    @property
    def event(self) -> ApproxDpEvent:
        return ApproxDpEvent(self.epsilon, self.delta)

    @property
    def parameters(self) -> dict[str, Any]:
        return {"release": self.release, "call_epsilon": self.epsilon, "call_delta": self.delta}


def budgets_dir() -> Path:
    return dpsynth_home() / "budgets"


def source_id(source: str | Path) -> str:
    """The owner-keyed id of a source path (not a hash of its content, not readable without the key)."""
    resolved = str(Path(source).expanduser().resolve())
    mac = hmac.new(load_source_key(), b"dpsynth-source-path\0" + resolved.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:32]


def source_ledger_path(source: str | Path) -> Path:
    return budgets_dir() / f"{source_id(source)}.ledger.json"


def init_source_budget(source: str | Path, budget: PrivacyBudget, *, privacy_unit: str) -> LedgerFile:
    """Create SOURCE's budget ledger; refuses when one exists (budgets are never reset)."""
    path = source_ledger_path(source)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return LedgerFile.create(path, budget, privacy_unit=privacy_unit, source_name=str(Path(source).expanduser().resolve()))
    except FileExistsError:
        raise SourceBudgetError(
            f"{source} already has a budget ({path}); budgets are never reset or replaced"
        ) from None


def find_source_budget(source: str | Path) -> LedgerFile | None:
    path = source_ledger_path(source)
    return LedgerFile(path) if path.exists() else None


def list_source_budgets() -> list[dict[str, Any]]:
    """Every source budget here: name, unit, budget, spent, remaining, and each release drawn from it."""
    out: list[dict[str, Any]] = []
    for path in sorted(budgets_dir().glob("*.ledger.json")):
        try:
            ledger = LedgerFile(path).load()
        except (LedgerFormatError, OSError) as exc:  # one bad file is reported, the others still listed
            out.append({"source": None, "ledger": str(path), "error": str(exc)})
            continue
        completions = {e["completes"]: e for e in ledger.entries if e["kind"] == "completion"}
        releases = []
        for charge in ledger.charges():
            done = completions.get(charge["seq"])
            releases.append({
                "release": charge["parameters"].get("release"),
                "epsilon": charge["charge"]["epsilon"],
                "delta": charge["charge"]["delta"],
                "time": charge["time"],
                "status": done["status"] if done else "running or killed",
                "release_ledger_id": (done or {}).get("outputs", {}).get("release_ledger_id"),
            })
        remaining = ledger.remaining
        out.append({
            "source": ledger.source_name,
            "ledger": str(path),
            "error": None if path == source_ledger_path(ledger.source_name) else (
                f"this file is not where {ledger.source_name}'s budget belongs (moved or copied over another "
                "source's budget): runs on that source refuse it"),
            "privacy_unit": ledger.privacy_unit,
            "epsilon_budget": ledger.budget.epsilon,
            "delta_budget": ledger.budget.delta,
            "epsilon_spent": ledger.epsilon_spent,
            "delta_spent": ledger.delta_spent,
            "epsilon_remaining": remaining[0],
            "delta_remaining": remaining[1],
            "releases": releases,
        })
    return out
