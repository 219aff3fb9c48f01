"""Verification of a ledger: canonical form, hash chain, signatures, event whitelist, recomputed charges,
and (given the files) the binding of the data file and card to the ledger.

``verify_text`` is what ``dpsynth ledger verify`` runs. It needs the file, the installed
accountants and -- to say *who* wrote the ledger -- a public key the verifier trusts.

What a pass proves: the chain is intact and in canonical form, it was signed by the holder of a
trusted key, every charge follows from its recorded events by dp-accounting, the spend stays within
the budget, and the data file and card are the ones the ledger was written with (for a
partitioned release: the directory holds exactly the parts of the entry's manifest, byte for
byte, and nothing else; :func:`directory_problems`). What no file can
prove: that the recorded noise was really applied (that rests on running the released code), or
that the key holder is honest.

Statuses (``VerificationReport.status``) and the CLI's exit codes:

* ``pass`` (0) -- all of the above;
* ``fail`` (1) -- something does not hold; ``problems`` names the first bad entry first;
* ``unsigned`` (3) -- intact but carries no signature: anyone could have written it;
* ``untrusted`` (4) -- intact and signed, but by a key the verifier has not said they trust;
* ``not-dp`` (5) -- intact, but the output holds real records (``dpsynth mix``): not a DP release.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

from dpsynth.accounting.accountants import Stage, UnsupportedEventError, compute_charge
from dpsynth.accounting.format import (
    ADD_OR_REMOVE_ONE,
    COMPOSITION_RULE,
    ENTRY_KINDS,
    SAMPLING_SCHEMES,
    SCHEMA,
    TOP_LEVEL_KEYS,
    entry_hash,
    header_hash,
    ledger_text,
    signed_message,
)
from dpsynth.accounting.serialization import LedgerFormatError, event_from_json, sha256_hex
from dpsynth.accounting.signing import SCHEME, key_id_of, verify_signature
from dpsynth.accounting.versions import dependency_versions

#: Relative tolerance for a recomputed charge. The computation is deterministic; this absorbs float
#: noise only. It is not widened when the recorded dp-accounting version differs (that is reported).
RTOL = 1e-9

EXIT_CODES = {"pass": 0, "fail": 1, "unsigned": 3, "untrusted": 4, "not-dp": 5}


@dataclass
class VerificationReport:
    ok: bool = True  # integrity: form, chain, signatures, charges, budget, bound files
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signer_key_id: str | None = None
    trusted: bool | None = None  # None: no trust decision was asked for
    contains_real_records: bool = False
    files_checked: bool = False

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)

    @property
    def signed(self) -> bool:
        return self.signer_key_id is not None

    @property
    def status(self) -> str:
        if not self.ok:
            return "fail"
        if not self.signed:
            return "unsigned"
        if self.trusted is False:
            return "untrusted"
        if self.contains_real_records:
            return "not-dp"
        return "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_text(
    text: str,
    *,
    trusted_keys: Iterable[str] | None = None,
    data_path: str | Path | None = None,
    card_path: str | Path | None = None,
) -> VerificationReport:
    """Verify a ledger file's text, byte for byte.

    ``trusted_keys``: public keys (64 hex digits) or key ids the verifier trusts; ``None`` makes no
    trust decision (``trusted`` stays ``None``). ``data_path`` / ``card_path``: the released files,
    checked against the last ``release`` entry.
    """
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
    if report.ok and (data_path is not None or card_path is not None):
        _verify_files(doc, report, data_path, card_path)
    if trusted_keys is not None and report.signer_key_id is not None:
        trusted = {k.strip().lower() for k in trusted_keys}
        public = (doc.get("signer") or {}).get("public_key", "")
        report.trusted = report.signer_key_id in trusted or public in trusted
    return report


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} in a ledger")


def verify_document(doc: dict[str, Any]) -> VerificationReport:
    """Verify a parsed ledger document (everything but the byte-level form and the files)."""
    report = VerificationReport()
    _verify_into(doc, report)
    return report


def _verify_into(doc: dict[str, Any], report: VerificationReport) -> None:
    try:
        _verify_fields(doc, report)
    except Exception as exc:  # any malformed field is a failed verification, never a crash
        report.fail(f"malformed ledger: {type(exc).__name__}: {exc}")


def _verify_files(doc: dict[str, Any], report: VerificationReport, data_path: Any, card_path: Any) -> None:
    releases = [e for e in doc["entries"] if e.get("kind") == "release"]
    if not releases:
        report.fail("the ledger binds no data file (no release entry): it may sit beside any file")
        return
    last = releases[-1]
    report.files_checked = True
    for what, path, key in (("data file", data_path, "data_sha256"), ("card", card_path, "card_sha256")):
        if path is None:
            continue
        path = Path(path)
        if key == "data_sha256" and ("manifest" in last or path.is_dir()):  # a partitioned release
            for problem in directory_problems(path, last):
                report.fail(problem)
            continue
        if not path.exists():
            report.fail(f"the {what} {path} is missing")
        elif file_sha256(path) != last[key]:
            report.fail(f"the {what} {path} is not the one this ledger was written with (SHA-256 differs from entry {last['seq']})")
        elif key == "card_sha256":
            flagged = card_sections_from_real_data(path)
            if flagged:
                report.notes.append(
                    f"the card holds evaluation numbers computed from real records without DP ({', '.join(flagged)}; "
                    "marked reads_private_data): the data file's guarantee does not cover them -- remove them before "
                    "publishing the card, or evaluate with --no-card"
                )


def card_sections_from_real_data(card_path: Path) -> list[str]:
    """Dotted paths of the card's blocks marked ``reads_private_data: true`` (outermost only).

    ``dpsynth evaluate`` writes such blocks (utility against a real holdout, audits, the release
    decision): numbers computed from real records with no DP noise. A card that cannot be parsed
    yields ``[]`` here (its hash, checked above, is what binds it)."""
    import yaml

    try:
        card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("reads_private_data") is True:
                if (where or "(card)") not in found:
                    found.append(where or "(card)")
                return
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, f"{where}[]")

    walk(card, "")
    return found


def directory_problems(directory: Path, entry: dict[str, Any]) -> list[str]:
    """Why the directory ``directory`` is not the partitioned release that ``entry`` binds ([] if it is).

    The entry's ``manifest`` lists every part (``name``, ``bytes``, ``rows``, ``sha256``) and its
    canonical JSON hashes to the entry's ``data_sha256``. The directory must hold exactly those
    parts, as plain files at its top level, each with the recorded size and SHA-256: a part
    edited, swapped, deleted or renamed, an extra file, a sub-folder or a symbolic link fails.
    Row counts are the writer's record (bound by the hashes, not re-counted here).
    """
    seq = entry.get("seq")
    manifest = entry.get("manifest")
    if manifest is None:
        return [f"the data {directory} is a directory, but the ledger binds a single data file (entry {seq})"]
    try:
        parts = {str(p["name"]): p for p in manifest["parts"]}
        consistent = sha256_hex(manifest) == entry["data_sha256"] and len(parts) == len(manifest["parts"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"entry {seq}: malformed manifest ({type(exc).__name__}: {exc})"]
    if not consistent:
        return [f"entry {seq}: the manifest does not hash to the entry's data_sha256 (or names a part twice)"]
    if directory.is_symlink() or not directory.is_dir():
        what = ("a symbolic link, not a directory" if directory.is_symlink()
                else "not a directory" if directory.exists() else "missing")
        return [f"the data directory {directory} of a partitioned release is {what}"]
    problems: list[str] = []
    files: dict[str, Path] = {}
    with os.scandir(directory) as listing:
        for item in listing:
            if item.is_file(follow_symlinks=False):
                files[item.name] = Path(item.path)
            else:
                problems.append(f"{item.path} is not a part of this release (a folder or link; a release holds plain files only)")
    for name in sorted(set(parts) - set(files)):
        problems.append(f"the part {name} of {directory} is missing (deleted or renamed since the release)")
    for name in sorted(set(files) - set(parts)):
        problems.append(f"{files[name]} is not a part of this release (an extra file in the directory)")
    for name in sorted(set(files) & set(parts)):
        part = parts[name]
        if files[name].stat().st_size != part["bytes"] or file_sha256(files[name]) != part["sha256"]:
            problems.append(
                f"the part {files[name]} is not the one this ledger was written with (size or SHA-256 differs from entry {seq})"
            )
    return problems


def _check_signature(report: VerificationReport, public_key: str | None, message: bytes, signature: Any, where: str) -> None:
    if public_key is None:
        if signature is not None:
            report.fail(f"{where}: carries a signature but the header names no signer")
        return
    if not verify_signature(public_key, message, signature):
        report.fail(f"{where}: signature does not verify (edited, re-hashed, or signed by another key)")


def _verify_fields(doc: dict[str, Any], report: VerificationReport) -> None:
    missing = [k for k in TOP_LEVEL_KEYS if k not in doc]
    if missing:
        report.fail(f"missing top-level field(s): {missing}")
        return
    extra = set(doc) - set(TOP_LEVEL_KEYS)
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

    ledger_id = str(doc["ledger_id"])
    signer = doc["signer"]
    public_key: str | None = None
    if signer is not None:
        if not (isinstance(signer, dict) and signer.get("scheme") == SCHEME and isinstance(signer.get("public_key"), str)):
            report.fail("header: malformed signer")
            return
        public_key = signer["public_key"]
        if signer.get("key_id") != key_id_of(public_key):
            report.fail("header: signer key_id does not match its public key")
        report.signer_key_id = key_id_of(public_key)
    if header_hash(doc) != doc["header_hash"]:
        report.fail("header: hash mismatch (budget, source, signer or identity was edited)")
    _check_signature(report, public_key, signed_message("header", ledger_id, doc["header_hash"]), doc["header_signature"], "header")

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
            report.fail(f"{where}: seq {entry.get('seq')!r} out of order (entries reordered, removed or inserted)")
        if entry.get("prev_hash") != prev:
            report.fail(f"{where}: prev_hash breaks the chain (an entry before it was removed, reordered or edited)")
        if entry.get("hash") != entry_hash(entry):
            report.fail(f"{where}: hash mismatch (the entry was edited)")
        _check_signature(report, public_key, signed_message("entry", ledger_id, str(entry.get("hash"))), entry.get("signature"), where)
        prev = entry.get("hash")
        kind = entry.get("kind")
        if kind not in ENTRY_KINDS:
            report.fail(f"{where}: unknown kind {kind!r}")
            continue
        if kind == "completion":
            if entry.get("completes") not in charge_seqs:
                report.fail(f"{where}: completes unknown charge {entry.get('completes')!r}")
            if entry.get("status") not in ("completed", "failed"):
                report.fail(f"{where}: unknown completion status {entry.get('status')!r}")
            continue
        if kind == "release":
            continue
        if kind == "real-records-included":
            report.contains_real_records = True
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
        recorded_version = entry.get("versions", {}).get("dp-accounting")
        if recorded_version != installed:
            report.notes.append(
                f"{where}: recorded with dp-accounting {recorded_version}, recomputed with {installed} "
                f"(same tolerance {RTOL:g}; a difference fails)"
            )
        rec_eps = float(recorded.get("epsilon", float("nan")))
        if not math.isclose(rec_eps, recomputed.epsilon, rel_tol=RTOL, abs_tol=1e-12):
            report.fail(f"{where}: recorded epsilon {rec_eps!r} != recomputed {recomputed.epsilon!r}")
        for name, value in recorded.get("by_accountant", {}).items():
            again = recomputed.by_accountant.get(name)
            if again is None or not math.isclose(float(value), again, rel_tol=RTOL, abs_tol=1e-12):
                report.fail(f"{where}: recorded {name} epsilon {value!r} != recomputed {again!r}")
        spent_eps += Fraction(rec_eps)
        spent_delta += Fraction(float(recorded["delta"]))
        cumulative = entry.get("cumulative", {})
        if cumulative.get("epsilon") != float(spent_eps) or cumulative.get("delta") != float(spent_delta):
            report.fail(f"{where}: cumulative spend does not add up")
        if spent_eps > Fraction(budget_eps) or spent_delta > Fraction(budget_delta):
            report.fail(f"{where}: cumulative spend exceeds the budget")
    if doc["head_hash"] != prev:
        report.fail("head_hash does not match the last entry (entries were removed or added at the end)")
    _check_signature(
        report, public_key, signed_message("head", ledger_id, str(doc["head_hash"]), len(entries)), doc["head_signature"], "head"
    )
