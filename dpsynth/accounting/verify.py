"""Verification of a ledger: canonical form, hash chain, event whitelist, recomputed charges.

``verify_text`` is what ``dpsynth ledger verify`` runs. It needs nothing but the file and the
installed accountants, so a reviewer can re-check a release without trusting whoever wrote it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from dpsynth.accounting.accountants import Stage, UnsupportedEventError, compute_charge
from dpsynth.accounting.ledger import (
    ADD_OR_REMOVE_ONE,
    COMPOSITION_RULE,
    ENTRY_KINDS,
    SAMPLING_SCHEMES,
    SCHEMA,
    entry_hash,
    header_of,
    ledger_text,
)
from dpsynth.accounting.serialization import LedgerFormatError, event_from_json, sha256_hex
from dpsynth.accounting.versions import dependency_versions

#: Relative tolerance for a recomputed charge when the recorded dp-accounting version is installed
#: (the computation is deterministic, so this only absorbs float noise) and when it is not.
SAME_VERSION_RTOL = 1e-9
OTHER_VERSION_RTOL = 1e-3


@dataclass
class VerificationReport:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)


def verify_text(text: str) -> VerificationReport:
    """Verify a ledger file's text, byte for byte."""
    report = VerificationReport()
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        report.fail(f"not valid JSON: {exc}")
        return report
    if not isinstance(doc, dict):
        report.fail("the ledger is not a JSON object")
        return report
    try:
        canonical = ledger_text(doc)
    except (TypeError, ValueError) as exc:
        report.fail(f"cannot be written canonically: {exc}")
        return report
    if canonical != text:
        report.fail("the file is not in canonical form (it was edited outside dpsynth)")
    _verify_into(doc, report)
    return report


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} in a ledger")


def verify_document(doc: dict[str, Any]) -> VerificationReport:
    """Verify a parsed ledger document (everything but the byte-level form)."""
    report = VerificationReport()
    _verify_into(doc, report)
    return report


def _verify_into(doc: dict[str, Any], report: VerificationReport) -> None:
    try:
        _verify_fields(doc, report)
    except Exception as exc:  # any malformed field is a failed verification, never a crash
        report.fail(f"malformed ledger: {type(exc).__name__}: {exc}")


def _verify_fields(doc: dict[str, Any], report: VerificationReport) -> None:
    required = ("schema", "ledger_id", "created", "budget", "source", "entries", "header_hash", "head_hash")
    missing = [k for k in required if k not in doc]
    if missing:
        report.fail(f"missing top-level field(s): {missing}")
        return
    extra = set(doc) - set(required)
    if extra:
        report.fail(f"unknown top-level field(s): {sorted(extra)}")
    if doc["schema"] != SCHEMA:
        report.fail(f"unknown schema {doc['schema']!r} (expected {SCHEMA!r})")
        return
    try:
        budget_eps = float(doc["budget"]["epsilon"])
        budget_delta = float(doc["budget"]["delta"])
        relation = doc["source"]["neighbouring_relation"]
        rule = doc["budget"]["composition_rule"]
    except (KeyError, TypeError, ValueError) as exc:
        report.fail(f"malformed budget/source: {exc}")
        return
    if not (math.isfinite(budget_eps) and budget_eps > 0 and 0 <= budget_delta < 1):
        report.fail("invalid budget")
    if relation != ADD_OR_REMOVE_ONE:
        report.fail(f"neighbouring relation {relation!r} is refused (only {ADD_OR_REMOVE_ONE!r})")
    if rule != COMPOSITION_RULE:
        report.fail(f"unknown composition rule {rule!r}")
    if sha256_hex(header_of(doc)) != doc["header_hash"]:
        report.fail("header hash mismatch (budget, source or identity was edited)")

    prev = doc["header_hash"]
    spent_eps = Fraction(0)
    spent_delta = Fraction(0)
    charge_seqs: set[int] = set()
    installed = dependency_versions().get("dp-accounting")
    entries = doc["entries"]
    if not isinstance(entries, list):
        report.fail("entries is not a list")
        return
    for i, entry in enumerate(entries):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            report.fail(f"{where}: not an object")
            return
        if entry.get("seq") != i:
            report.fail(f"{where}: seq {entry.get('seq')!r} out of order")
        if entry.get("prev_hash") != prev:
            report.fail(f"{where}: prev_hash breaks the chain")
        if entry.get("hash") != entry_hash(entry):
            report.fail(f"{where}: hash mismatch (the entry was edited)")
        prev = entry.get("hash")
        kind = entry.get("kind")
        if kind not in ENTRY_KINDS:
            report.fail(f"{where}: unknown kind {kind!r}")
            continue
        if kind == "completion":
            if entry.get("completes") not in charge_seqs:
                report.fail(f"{where}: completes unknown charge {entry.get('completes')!r}")
            continue
        try:
            event = event_from_json(entry["event"])
        except (LedgerFormatError, KeyError) as exc:
            report.fail(f"{where}: {exc}")
            continue
        if entry.get("event_sha256") != sha256_hex(entry["event"]):
            report.fail(f"{where}: event_sha256 mismatch")
        if kind == "postprocessing":
            if type(event).__name__ != "NoOpDpEvent" or entry.get("charge") != {"epsilon": 0.0, "delta": 0.0}:
                report.fail(f"{where}: post-processing must be a zero-charge NoOpDpEvent")
            continue
        # charge entry
        charge_seqs.add(i)
        if entry.get("neighbouring_relation") != ADD_OR_REMOVE_ONE:
            report.fail(f"{where}: neighbouring relation {entry.get('neighbouring_relation')!r} refused")
        if entry.get("sampling") not in SAMPLING_SCHEMES:
            report.fail(f"{where}: unknown sampling scheme {entry.get('sampling')!r}")
        try:
            stages = [Stage(s["name"], event_from_json(s["event"]), float(s["delta"])) for s in entry.get("stages", [])]
            recorded = entry["charge"]
            recomputed = compute_charge(event, float(recorded["delta"]), stages or None)
        except (LedgerFormatError, UnsupportedEventError, KeyError, TypeError, ValueError) as exc:
            report.fail(f"{where}: cannot recompute the charge: {exc}")
            continue
        same_version = entry.get("versions", {}).get("dp-accounting") == installed
        rtol = SAME_VERSION_RTOL if same_version else OTHER_VERSION_RTOL
        if not same_version:
            report.notes.append(
                f"{where}: recorded with dp-accounting {entry.get('versions', {}).get('dp-accounting')}, "
                f"recomputed with {installed} (tolerance {rtol:g})"
            )
        rec_eps = float(recorded.get("epsilon", float("nan")))
        if not math.isclose(rec_eps, recomputed.epsilon, rel_tol=rtol, abs_tol=1e-12):
            report.fail(f"{where}: recorded epsilon {rec_eps!r} != recomputed {recomputed.epsilon!r}")
        for name, value in recorded.get("by_accountant", {}).items():
            again = recomputed.by_accountant.get(name)
            if again is None or not math.isclose(float(value), again, rel_tol=rtol, abs_tol=1e-12):
                report.fail(f"{where}: recorded {name} epsilon {value!r} != recomputed {again!r}")
        spent_eps += Fraction(rec_eps)
        spent_delta += Fraction(float(recorded["delta"]))
        cumulative = entry.get("cumulative", {})
        if cumulative.get("epsilon") != float(spent_eps) or cumulative.get("delta") != float(spent_delta):
            report.fail(f"{where}: cumulative spend does not add up")
        if spent_eps > Fraction(budget_eps) or spent_delta > Fraction(budget_delta):
            report.fail(f"{where}: cumulative spend exceeds the budget")
    if doc["head_hash"] != prev:
        report.fail("head_hash does not match the last entry (entries were removed or added)")
