"""Read-only views of ledgers: summaries, recomputed epsilon profiles, composition of releases.

These are the functions behind ``dpsynth ledger show | recompute | compose``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from dpsynth.accounting.accountants import Stage, compute_charge, epsilon_by_accountant
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.serialization import event_from_json
from dpsynth.accounting.verify import verify_text

#: Deltas of the default epsilon-by-delta profile.
PROFILE_DELTAS = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4)


def summarize(ledger: Ledger, *, verified: bool | None = None) -> dict[str, Any]:
    """A JSON-ready summary: totals, budget, remaining, one row per entry."""
    rows = []
    for entry in ledger.entries:
        row = {"seq": entry["seq"], "kind": entry["kind"], "time": entry["time"]}
        if entry["kind"] == "charge":
            row.update(
                operation=entry["operation"],
                mechanism=entry["mechanism"],
                epsilon=entry["charge"]["epsilon"],
                delta=entry["charge"]["delta"],
                accountant=entry["charge"]["accountant"],
                by_accountant=entry["charge"]["by_accountant"],
                sampling=entry["sampling"],
            )
        elif entry["kind"] == "postprocessing":
            row.update(operation=entry["operation"], mechanism="post-processing", epsilon=0.0, delta=0.0,
                       description=entry["description"])
        elif entry["kind"] == "completion":
            row.update(completes=entry["completes"], status=entry.get("status"), outputs=entry.get("outputs"))
        elif entry["kind"] == "release":
            row.update(operation="release", data_name=entry["data_name"], data_sha256=entry["data_sha256"],
                       card_sha256=entry["card_sha256"])
        else:  # real-records-included
            row.update(operation="real records included (not DP)", count=entry["count"], note=entry.get("note"))
        rows.append(row)
    remaining = ledger.remaining
    return {
        "ledger_id": ledger.ledger_id,
        "source": ledger.source_name,
        "privacy_unit": ledger.privacy_unit,
        "neighbouring_relation": ledger.neighbouring_relation,
        "composition_rule": "basic (sum of per-call epsilons and deltas)",
        "epsilon_spent": ledger.epsilon_spent,
        "delta_spent": ledger.delta_spent,
        "epsilon_budget": ledger.budget.epsilon,
        "delta_budget": ledger.budget.delta,
        "epsilon_remaining": remaining[0],
        "delta_remaining": remaining[1],
        "verified": verified,
        "signer_key_id": ledger.signer_key_id,
        "contains_real_records": ledger.contains_real_records,
        "differentially_private": not ledger.contains_real_records,
        "head_hash": ledger.head_hash,
        "entries": rows,
    }


def load_checked(path: Path) -> tuple[Ledger, bool, list[str]]:
    """Load a ledger without refusing it, and say whether it verifies (and why not)."""
    text = path.read_text(encoding="utf-8")
    report = verify_text(text)
    return Ledger.load(path, verify=False, signer=None), report.ok, report.problems


@dataclass(frozen=True)
class EntryRecompute:
    seq: int
    operation: str
    mechanism: str
    recorded_epsilon: float
    recorded_delta: float
    recomputed_epsilon: float
    profile: list[tuple[float, float]]
    accountant: str = ""  # which bound gave recomputed_epsilon (pld, rdp, basic or stages)


def recompute(ledger: Ledger, accountant: str | None = None, deltas: Sequence[float] = PROFILE_DELTAS) -> list[EntryRecompute]:
    """Re-derive every charge from its stored event, and an epsilon-by-delta profile per charge.

    With ``accountant`` the numbers come from that accountant only (``pld`` or ``rdp``); otherwise
    the minimum over all (as in the ledger). The recorded delta is kept for the point figure.
    """
    out = []
    for entry in ledger.charges():
        event = event_from_json(entry["event"])
        delta = entry["charge"]["delta"]
        if accountant is None:
            stages = [Stage(s["name"], event_from_json(s["event"]), s["delta"]) for s in entry.get("stages", [])]
            charge = compute_charge(event, delta, stages or None)
            eps, used = charge.epsilon, charge.accountant
        else:
            eps, used = epsilon_by_accountant(event, delta, [accountant])[accountant], accountant
        profile = []
        for d in deltas:
            by = epsilon_by_accountant(event, d, None if accountant is None else [accountant])
            profile.append((float(d), min(by.values())))
        out.append(EntryRecompute(entry["seq"], entry["operation"], entry["mechanism"], entry["charge"]["epsilon"],
                                  delta, eps, profile, used))
    return out


def total_profile(ledger: Ledger, deltas: Sequence[float], accountant: str | None = None) -> list[tuple[float, float]]:
    """Basic composition of all charges at total delta D, with D split evenly across the charges."""
    charges = ledger.charges()
    k = max(1, len(charges))
    out = []
    for d in deltas:
        total = 0.0
        for entry in charges:
            by = epsilon_by_accountant(event_from_json(entry["event"]), d / k, None if accountant is None else [accountant])
            total += min(by.values())
        out.append((float(d), total))
    return out


def compose_ledgers(ledgers: Sequence[Ledger]) -> dict[str, Any]:
    """Total spend of several releases from the same source (basic composition).

    Ledgers that share a ``ledger_id`` are one ledger at different points in time: the longest is
    counted once (it must extend the others, else the set is refused).
    """
    by_id: dict[str, Ledger] = {}
    for ledger in ledgers:
        prev = by_id.get(ledger.ledger_id)
        if prev is None:
            by_id[ledger.ledger_id] = ledger
            continue
        short, long_ = sorted((prev, ledger), key=lambda l: len(l.entries))
        if [e["hash"] for e in long_.entries[: len(short.entries)]] != [e["hash"] for e in short.entries]:
            raise ValueError(f"two different histories share ledger id {ledger.ledger_id}")
        by_id[ledger.ledger_id] = long_
    units = {l.privacy_unit for l in by_id.values()}
    sources = {l.source_name for l in by_id.values()}
    eps = sum((Fraction(l.epsilon_spent) for l in by_id.values()), Fraction(0))
    dlt = sum((Fraction(l.delta_spent) for l in by_id.values()), Fraction(0))
    return {
        "ledgers": len(by_id),
        "epsilon_spent": float(eps),
        "delta_spent": float(dlt),
        "rule": "basic composition (valid under adaptive choice of each release's budget)",
        "privacy_units": sorted(units),
        "sources": sorted(sources),
        "warnings": (["the ledgers name different privacy units: their sum bounds the finest unit only if "
                      "each unit is contained in the others"] if len(units) > 1 else [])
        + (["the releases come from different sources (" + ", ".join(sorted(sources)) + "): a sum across sources "
            "bounds nothing for one person unless the sources hold the same people"] if len(sources) > 1 else [])
        + (["a ledger marks real records included: that output is not differentially private"]
           if any(l.contains_real_records for l in by_id.values()) else []),
    }
