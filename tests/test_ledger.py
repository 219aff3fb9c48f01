"""The budget ledger: refusal before spending, hash chain, tamper detection, concurrency."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest
from dp_accounting import dp_event

from dpsynth.accounting import (
    BudgetExceededError,
    ExponentialMechanismDpEvent,
    InvalidBudgetError,
    Ledger,
    LedgerFile,
    LedgerFormatError,
    PrivacyBudget,
    compute_charge,
    fingerprint_dataframe,
    fingerprint_texts,
    verify_text,
)

CHEAP = dp_event.ZCDpEvent(0.01)  # RDP-only: fast to recompute


def small_ledger() -> Ledger:
    ledger = Ledger.create(PrivacyBudget(2.0, 1e-5), privacy_unit="one row", source_name="test.csv")
    entry = ledger.charge(operation="tabular.synthesize", mechanism="test", event=CHEAP, delta=1e-6,
                          parameters={"rho": 0.01}, provenance={"seed": 3})
    ledger.complete(entry, source_fingerprint="hmac-sha256:00", outputs={"rows": 10})
    ledger.record_postprocessing(operation="tabular.sample", description="more rows")
    return ledger


@pytest.mark.parametrize("eps,delta", [(0, 1e-5), (-1, 1e-5), (float("nan"), 1e-5), (float("inf"), 1e-5),
                                       (1.0, 1.0), (1.0, -1e-9), (1.0, float("nan")), ("1", 1e-5), (True, 1e-5)])
def test_invalid_budgets(eps, delta):
    with pytest.raises(InvalidBudgetError):
        PrivacyBudget(eps, delta)


def test_charges_add_up_and_verify():
    ledger = small_ledger()
    charge = compute_charge(CHEAP, 1e-6)
    assert ledger.epsilon_spent == charge.epsilon
    assert ledger.delta_spent == 1e-6
    assert ledger.remaining[0] == pytest.approx(2.0 - charge.epsilon)
    assert verify_text(ledger.to_json()).ok
    kinds = [e["kind"] for e in ledger.entries]
    assert kinds == ["charge", "completion", "postprocessing"]
    entry = ledger.entries[0]
    for key in ("operation", "event", "neighbouring_relation", "privacy_unit", "sampling", "charge", "cumulative",
                "versions", "time", "provenance", "prev_hash", "hash"):
        assert key in entry
    assert entry["charge"]["by_accountant"]["rdp"] == charge.by_accountant["rdp"]


def test_overspend_refused_before_any_change():
    ledger = small_ledger()
    before = ledger.to_json()
    with pytest.raises(BudgetExceededError) as info:
        ledger.charge(operation="again", mechanism="big", event=dp_event.GaussianDpEvent(0.5), delta=1e-6)
    assert ledger.to_json() == before
    assert info.value.requested[0] > info.value.remaining[0]
    # a call's own limit is enforced too, even when the ledger has room
    with pytest.raises(BudgetExceededError):
        ledger.charge(operation="x", mechanism="m", event=dp_event.ZCDpEvent(0.05), delta=1e-6, limit=PrivacyBudget(0.1, 1e-6))
    assert ledger.to_json() == before
    # delta overspend alone is refused as well
    with pytest.raises(BudgetExceededError):
        ledger.charge(operation="x", mechanism="m", event=CHEAP, delta=2e-5)
    assert ledger.to_json() == before


def test_filter_answers_two_queries_and_refuses_the_third():
    # budget fits two charges of a fixed event but not three (cf. OpenDP's filter behaviour)
    one = compute_charge(CHEAP, 1e-7).epsilon
    ledger = Ledger.create(PrivacyBudget(2.5 * one, 1e-6), privacy_unit="row", source_name="s")
    ledger.charge(operation="q1", mechanism="m", event=CHEAP, delta=1e-7)
    ledger.charge(operation="q2", mechanism="m", event=CHEAP, delta=1e-7)
    with pytest.raises(BudgetExceededError):
        ledger.charge(operation="q3", mechanism="m", event=CHEAP, delta=1e-7)
    # a smaller request still fits: the stopping rule depends only on public parameters
    ledger.charge(operation="q4", mechanism="m", event=dp_event.ZCDpEvent(1e-6), delta=1e-7)
    assert ledger.epsilon_spent <= ledger.budget.epsilon


def test_noise_seeds_are_never_written():
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit="row", source_name="s")
    with pytest.raises(ValueError, match="seed"):
        ledger.charge(operation="x", mechanism="m", event=CHEAP, delta=1e-6, provenance={"noise_seed": 1234})


def test_every_single_byte_edit_is_caught():
    text = small_ledger().to_json()
    assert verify_text(text).ok
    replacements = {"0": "1", "1": "2", "e": "f", '"': "'", " ": "\t", "\n": " ", ",": ";"}
    # every digit (numbers and hashes are where a forger edits) plus an even spread of the rest
    positions = [i for i, ch in enumerate(text) if ch.isdigit()][::3] + list(range(0, len(text), 11))
    for i in sorted(set(positions)):
        ch = text[i]
        new = replacements.get(ch, "0" if ch != "0" else "1")
        tampered = text[:i] + new + text[i + 1 :]
        assert not verify_text(tampered).ok, f"edit at byte {i} ({ch!r} -> {new!r}) not caught"
    assert not verify_text(text + " ").ok
    assert not verify_text(text[:-1]).ok


def test_semantic_tampering_is_caught_even_with_rehashing():
    doc = json.loads(small_ledger().to_json())
    # lower the recorded charge and recompute all hashes, as a forger would
    from dpsynth.accounting.ledger import entry_hash, ledger_text

    doc["entries"][0]["charge"]["epsilon"] /= 2
    doc["entries"][0]["charge"]["by_accountant"]["rdp"] /= 2
    prev = doc["header_hash"]
    for e in doc["entries"]:
        e["prev_hash"] = prev
        e["hash"] = entry_hash(e)
        prev = e["hash"]
    doc["head_hash"] = prev
    report = verify_text(ledger_text(doc))
    assert not report.ok
    assert any("recomputed" in p for p in report.problems)


def test_dropping_an_entry_is_caught():
    doc = json.loads(small_ledger().to_json())
    from dpsynth.accounting.ledger import ledger_text

    doc["entries"] = doc["entries"][1:]
    assert not verify_text(ledger_text(doc)).ok


def test_load_refuses_tampered_file(tmp_path: Path):
    path = tmp_path / "x.ledger.json"
    small_ledger().save(path)
    assert Ledger.load(path).epsilon_spent > 0
    path.write_text(path.read_text().replace('"one row"', '"one user"'))
    with pytest.raises(LedgerFormatError):
        Ledger.load(path)


def _spend_worker(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        LedgerFile(path).charge(operation="concurrent", mechanism="m", event=ExponentialMechanismDpEvent(0.6), delta=0.0)
        results.put("ok")
    except BudgetExceededError:
        results.put("refused")


def test_concurrent_double_spend_is_prevented(tmp_path: Path):
    path = tmp_path / "shared.ledger.json"
    LedgerFile.create(path, PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="s")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_spend_worker, args=(str(path), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["ok", "refused"]
    ledger = Ledger.load(path)
    assert len(ledger.charges()) == 1
    assert ledger.epsilon_spent <= 1.0


def test_ledger_file_refuses_to_overwrite(tmp_path: Path):
    path = tmp_path / "a.ledger.json"
    LedgerFile.create(path, PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="s")
    with pytest.raises(FileExistsError):
        LedgerFile.create(path, PrivacyBudget(5.0, 1e-6), privacy_unit="row", source_name="s")


def test_fingerprints_are_keyed_salted_and_checkable():
    import hashlib

    import pandas as pd

    from dpsynth.accounting.fingerprint import matches_dataframe, salt_of

    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    k1, k2 = b"k" * 32, b"j" * 32
    salt = b"s" * 16
    # same data, key and salt: same value (the owner can re-check a release)
    assert fingerprint_dataframe(df, k1, salt=salt) == fingerprint_dataframe(df.copy(), k1, salt=salt)
    assert fingerprint_dataframe(df, k1, salt=salt) != fingerprint_dataframe(df, k2, salt=salt)
    assert fingerprint_dataframe(df, k1, salt=salt) != fingerprint_dataframe(df.iloc[:2], k1, salt=salt)
    # two releases of the same data carry unlinkable fingerprints (fresh salt each time) ...
    f1, f2 = fingerprint_dataframe(df, k1), fingerprint_dataframe(df, k1)
    assert f1 != f2 and salt_of(f1) != salt_of(f2)
    assert f1.split(":")[2] != f2.split(":")[2]
    # ... that the key holder still matches to the data, and nobody matches with another key
    assert matches_dataframe(f1, df, k1) and matches_dataframe(f2, df, k1)
    assert not matches_dataframe(f1, df, k2)
    assert not matches_dataframe(f1, df.iloc[:2], k1)
    plain = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()
    assert plain not in fingerprint_dataframe(df, k1)
    assert fingerprint_texts(["a", "b"], source_key=k1) != fingerprint_texts(["ab"], source_key=k1)


def test_short_source_keys_are_refused(monkeypatch):
    import pandas as pd

    from dpsynth.errors import DpsynthError

    df = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(DpsynthError, match="at least 32 bytes"):
        fingerprint_dataframe(df, b"k" * 31)
    monkeypatch.setenv("DPSYNTH_SOURCE_KEY", "ab" * 16)
    with pytest.raises(DpsynthError, match="at least 32 bytes"):
        fingerprint_dataframe(df)
