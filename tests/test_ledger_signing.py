"""Signed ledgers: forgeries that re-hash the chain fail, other keys are not trusted, files are bound.

Each test here failed on the unsigned ledger of the first landing (SHA-256 chain only): an edited
and re-hashed ledger verified OK there.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from dp_accounting import dp_event
from typer.testing import CliRunner

from dpsynth.accounting import Ledger, PrivacyBudget, Stage, compute_charge
from dpsynth.accounting.format import entry_hash, header_hash, ledger_text, signed_message
from dpsynth.accounting.serialization import event_to_json, sha256_hex
from dpsynth.accounting.signing import Signer
from dpsynth.accounting.verify import file_sha256, verify_text
from dpsynth.cli import app
from dpsynth.release import release_paths

runner = CliRunner()


def _release(tmp_path: Path) -> Path:
    """A release as the tabular path writes it: a domain charge (stages), a method charge, files bound."""
    data = tmp_path / "synthetic.csv"
    data.write_text("age,sex\n31,F\n45,M\n")
    ledger = Ledger.create(PrivacyBudget(2.0, 1e-6), privacy_unit="row", source_name="in.csv")
    e = ledger.charge(
        operation="tabular.domain", mechanism="dp-domain", delta=1e-7,
        stages=[Stage("row_count", dp_event.GaussianDpEvent(30.0), 5e-8), Stage("categories", dp_event.GaussianDpEvent(20.0), 5e-8)],
    )
    ledger.complete(e, outputs={"public_domain": {}})
    e = ledger.charge(operation="tabular.fit.mst", mechanism="mst", event=dp_event.GaussianDpEvent(8.11), delta=9e-7)
    ledger.complete(e, outputs={"model": "mst"})
    card = release_paths(data).card
    card.write_text("schema: dpsynth-card/1\n")
    ledger.record_release(data_name=data.name, data_sha256=file_sha256(data), card_sha256=file_sha256(card))
    ledger.save(release_paths(data).ledger)
    return data


def _rebuild(doc: dict, signer: Signer | None = None) -> dict:
    """What a forger does: fix seq, chain, cumulative sums and hashes; re-sign only with their own key."""
    doc = copy.deepcopy(doc)
    if signer is not None:
        doc["signer"] = signer.describe()
    doc["header_hash"] = header_hash(doc)
    if signer is not None:
        doc["header_signature"] = signer.sign(signed_message("header", doc["ledger_id"], doc["header_hash"]))
    prev, eps, dlt = doc["header_hash"], 0.0, 0.0
    for i, entry in enumerate(doc["entries"]):
        entry["seq"] = i
        if entry["kind"] == "charge":
            eps += entry["charge"]["epsilon"]
            dlt += entry["charge"]["delta"]
            entry["cumulative"] = {"epsilon": eps, "delta": dlt, "rule": "basic"}
        if entry["kind"] == "completion" and entry["completes"] >= i:
            entry["completes"] = i - 1
        entry["prev_hash"] = prev
        entry["hash"] = entry_hash(entry)
        if signer is not None:
            entry["signature"] = signer.sign(signed_message("entry", doc["ledger_id"], entry["hash"]))
        prev = entry["hash"]
    doc["head_hash"] = prev
    if signer is not None:
        doc["head_signature"] = signer.sign(signed_message("head", doc["ledger_id"], prev, len(doc["entries"])))
    return doc


def _shrink_mst_charge(doc: dict) -> None:
    """The forger's edit: the MST charge's noise multiplier 8.11 -> 80 with its charge recomputed."""
    charge = next(e for e in doc["entries"] if e.get("operation") == "tabular.fit.mst")
    charge["event"] = event_to_json(dp_event.GaussianDpEvent(80.0))
    charge["event_sha256"] = sha256_hex(charge["event"])
    new = compute_charge(dp_event.GaussianDpEvent(80.0), charge["charge"]["delta"])
    charge["charge"].update(epsilon=new.epsilon, by_accountant=dict(new.by_accountant))


def _doc(data: Path) -> dict:
    return json.loads(release_paths(data).ledger.read_text())


def _write(data: Path, doc: dict) -> None:
    release_paths(data).ledger.write_text(ledger_text(doc))


def _verify(data: Path, *extra: str):
    return runner.invoke(app, ["ledger", "verify", str(data), *extra])


def test_genuine_release_passes_for_the_owner(tmp_path):
    data = _release(tmp_path)
    result = _verify(data)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output


def test_forgery_smaller_noise_rehashed_fails(tmp_path):
    """Noise multiplier 8.11 -> 80 (a smaller epsilon), charge recomputed, chain rebuilt: verify fails."""
    data = _release(tmp_path)
    doc = _doc(data)
    _shrink_mst_charge(doc)
    forged = _rebuild(doc)
    report = verify_text(ledger_text(forged))
    assert not report.ok and report.status == "fail"
    assert any("entry 2" in p and "signature" in p for p in report.problems), report.problems
    assert report.problems[0].startswith("entry 2")  # the first bad entry is named first
    _write(data, forged)
    result = _verify(data)
    assert result.exit_code == 1 and "entry 2" in result.output


def test_forgery_dropped_domain_charge_rehashed_fails(tmp_path):
    data = _release(tmp_path)
    doc = _doc(data)
    doc["entries"] = doc["entries"][2:]  # the domain charge and its completion removed
    forged = _rebuild(doc)
    report = verify_text(ledger_text(forged))
    assert not report.ok
    assert _verify_after_write(data, forged).exit_code == 1


def _verify_after_write(data: Path, doc: dict):
    _write(data, doc)
    return _verify(data)


def test_truncated_and_reordered_ledgers_fail(tmp_path):
    data = _release(tmp_path)
    doc = _doc(data)
    truncated = copy.deepcopy(doc)
    truncated["entries"] = truncated["entries"][:-1]
    truncated["head_hash"] = truncated["entries"][-1]["hash"]  # signatures of the kept entries are genuine
    report = verify_text(ledger_text(truncated))
    assert not report.ok and any(p.startswith("head") for p in report.problems)
    reordered = copy.deepcopy(doc)
    reordered["entries"][0], reordered["entries"][2] = reordered["entries"][2], reordered["entries"][0]
    assert not verify_text(ledger_text(reordered)).ok
    assert not verify_text(ledger_text(_rebuild(reordered))).ok


def test_resigned_with_another_key_is_not_trusted(tmp_path):
    data = _release(tmp_path)
    owner = Signer.owner()
    forger = Signer.generate()
    doc = _doc(data)
    _shrink_mst_charge(doc)
    forged = _rebuild(doc, signer=forger)
    report = verify_text(ledger_text(forged), trusted_keys={owner.public_key_hex})
    assert report.ok and report.status == "untrusted" and report.signer_key_id == forger.key_id
    _write(data, forged)
    assert _verify(data).exit_code == 4
    key_file = tmp_path / "owner.pub"
    key_file.write_text(owner.public_key_hex + "\n")
    assert _verify(data, "--public-key", str(key_file)).exit_code == 4
    assert _verify(data, "--trust-key-id", owner.key_id).exit_code == 4
    # trusting the forger's key explicitly is the verifier's own choice, and then it passes
    assert _verify(data, "--trust-key-id", forger.key_id).exit_code == 0


def test_third_party_verifies_with_the_published_public_key(tmp_path, monkeypatch):
    data = _release(tmp_path)
    shown = runner.invoke(app, ["keys", "show-public"])
    assert shown.exit_code == 0
    public_hex = shown.output.splitlines()[0].strip()
    assert public_hex == Signer.owner().public_key_hex
    # a reviewer's machine: another dpsynth home, no owner key there
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "reviewer"))
    monkeypatch.delenv("DPSYNTH_SIGNING_KEY", raising=False)
    assert _verify(data).exit_code == 4  # signed, but by nobody the reviewer trusts yet
    key_file = tmp_path / "owner.pub"
    key_file.write_text(public_hex)
    result = _verify(data, "--public-key", str(key_file))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "reviewer" / "signing.key").exists()  # verifying never creates keys


def test_unsigned_ledger_is_not_a_pass(tmp_path):
    data = tmp_path / "u.csv"
    data.write_text("a\n1\n")
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="s", signer=None)
    ledger.charge(operation="x", mechanism="gaussian", event=dp_event.GaussianDpEvent(5.0), delta=1e-6)
    card = release_paths(data).card
    card.write_text("c: 1\n")
    ledger.record_release(data_name=data.name, data_sha256=file_sha256(data), card_sha256=file_sha256(card))
    ledger.save(release_paths(data).ledger)
    report = verify_text(release_paths(data).ledger.read_text())
    assert report.ok and report.status == "unsigned"
    result = _verify(data)
    assert result.exit_code == 3 and "unsigned" in result.output


def test_swapped_data_file_or_card_fails(tmp_path):
    data = _release(tmp_path)
    private = tmp_path / "private.csv"
    private.write_text("age,sex\n52,F\n19,M\n")
    original = data.read_bytes()
    data.write_bytes(private.read_bytes())  # the private input copied over the synthetic data
    result = _verify(data)
    assert result.exit_code == 1 and "not the one this ledger was written with" in result.output
    data.write_bytes(original)
    assert _verify(data).exit_code == 0
    card = release_paths(data).card
    card.write_text(card.read_text() + "privacy: {epsilon: 0.01}\n")
    assert _verify(data).exit_code == 1


def test_signature_of_one_ledger_does_not_fit_another(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _release(tmp_path / "a"), _release(tmp_path / "b")
    doc_a, doc_b = _doc(a), _doc(b)
    doc_b["entries"][2]["signature"] = doc_a["entries"][2]["signature"]
    assert not verify_text(ledger_text(doc_b)).ok


def test_appending_with_another_key_is_refused(tmp_path):
    from dpsynth.accounting.ledger import LedgerSigningError

    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="s", signer=Signer.generate())
    path = tmp_path / "l.ledger.json"
    ledger.save(path)
    loaded = Ledger.load(path)  # the owner's key here is not the ledger's key
    with pytest.raises(LedgerSigningError):
        loaded.charge(operation="x", mechanism="gaussian", event=dp_event.GaussianDpEvent(5.0), delta=1e-6)
    assert verify_text(path.read_text()).ok


def test_signing_key_file_is_private_and_never_in_a_ledger(tmp_path):
    from dpsynth.accounting.keys import signing_key_path

    _release(tmp_path)
    key_path = signing_key_path()
    assert key_path.exists() and (key_path.stat().st_mode & 0o777) == 0o600
    secret = key_path.read_text().strip()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="ignore"), f


def test_a_deleted_card_or_data_file_fails(tmp_path):
    data = _release(tmp_path)
    card = release_paths(data).card
    saved = card.read_bytes()
    card.unlink()
    result = _verify(data)
    assert result.exit_code == 1 and "missing" in result.output
    card.write_bytes(saved)
    data.unlink()
    assert _verify(release_paths(data).ledger).exit_code == 1
