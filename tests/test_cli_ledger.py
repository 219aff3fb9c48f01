"""`dpsynth ledger show | verify | recompute | compose` on real ledger files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dp_accounting import dp_event
from typer.testing import CliRunner

from dpsynth.accounting import ExponentialMechanismDpEvent, Ledger, PrivacyBudget, compute_charge
from dpsynth.accounting.events import ApproxDpEvent
from dpsynth.accounting.verify import file_sha256
from dpsynth.cli import app
from dpsynth.release import release_paths

runner = CliRunner()


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    data = tmp_path / "out.csv"
    data.write_text("a,b\n1,2\n")
    ledger = Ledger.create(PrivacyBudget(3.0, 1e-5), privacy_unit="one row", source_name="in.csv")
    e = ledger.charge(operation="tabular.synthesize", mechanism="gaussian", event=dp_event.GaussianDpEvent(3.0), delta=1e-6)
    ledger.complete(e, source_fingerprint="hmac-sha256:ab")
    ledger.charge(operation="text.generate", mechanism="em", delta=0.0,
                  event=dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(0.05), 10))
    card = release_paths(data).card
    card.write_text("schema: test\n")
    ledger.record_release(data_name=data.name, data_sha256=file_sha256(data), card_sha256=file_sha256(card))
    ledger.save(release_paths(data).ledger)
    return data


def test_show_json_has_required_keys(dataset: Path):
    result = runner.invoke(app, ["ledger", "show", str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    for key in ("epsilon_spent", "delta_spent", "epsilon_budget", "delta_budget", "entries"):
        assert key in summary
    expected = compute_charge(dp_event.GaussianDpEvent(3.0), 1e-6).epsilon + compute_charge(
        dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(0.05), 10), 0.0).epsilon
    assert summary["epsilon_spent"] == pytest.approx(expected, rel=1e-12)
    assert summary["delta_spent"] == pytest.approx(1e-6)
    assert summary["verified"] is True
    assert [e["kind"] for e in summary["entries"]] == ["charge", "completion", "charge", "release"]


def test_show_table_mentions_unit_and_totals(dataset: Path):
    result = runner.invoke(app, ["ledger", "show", str(release_paths(dataset).ledger)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "one row" in result.output and "Remaining" in result.output and "gaussian" in result.output


def test_verify_ok_and_tampered(dataset: Path):
    assert runner.invoke(app, ["ledger", "verify", str(dataset)]).exit_code == 0
    path = release_paths(dataset).ledger
    text = path.read_text()
    i = text.index('"noise_multiplier": 3.0') + len('"noise_multiplier": ')
    path.write_text(text[:i] + "4" + text[i + 1 :])  # one edited byte
    result = runner.invoke(app, ["ledger", "verify", str(dataset)])
    assert result.exit_code != 0
    assert "FAIL" in result.output


def test_verify_missing_and_garbage(tmp_path: Path):
    assert runner.invoke(app, ["ledger", "verify", str(tmp_path / "nope.csv")]).exit_code != 0
    bad = tmp_path / "x.ledger.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["ledger", "verify", str(bad)])
    assert result.exit_code != 0


def test_recompute_profile(dataset: Path):
    result = runner.invoke(app, ["ledger", "recompute", str(dataset), "--accountant", "rdp", "--delta", "1e-5", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["entries"][0]["recomputed_epsilon"] == pytest.approx(
        compute_charge(dp_event.GaussianDpEvent(3.0), 1e-6).by_accountant["rdp"])
    profile = out["total_profile"]
    eps = [e for _, e in profile]
    assert eps == sorted(eps, reverse=True)  # epsilon decreases as delta grows
    assert "epsilon_at_delta" in out
    assert runner.invoke(app, ["ledger", "recompute", str(dataset), "--accountant", "prv"]).exit_code != 0


def test_compose_counts_a_continued_ledger_once(dataset: Path, tmp_path: Path):
    first = Ledger.load(release_paths(dataset).ledger)
    other = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit="one row", source_name="in.csv")
    other.charge(operation="x", mechanism="m", event=dp_event.ZCDpEvent(0.01), delta=1e-7)
    other_path = tmp_path / "other.ledger.json"
    other.save(other_path)
    result = runner.invoke(app, ["ledger", "compose", str(dataset), str(other_path), str(dataset), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["ledgers"] == 2
    assert out["epsilon_spent"] == pytest.approx(first.epsilon_spent + other.epsilon_spent)
    assert out["delta_spent"] == pytest.approx(first.delta_spent + other.delta_spent)


def test_error_messages_are_printed_as_plain_text(monkeypatch):
    """Brackets in an error (an extra's name, a list) must not be eaten as console markup."""
    import io

    import typer
    from rich.console import Console

    import dpsynth.cli.common as common

    buffer = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=buffer, width=200))
    with pytest.raises(typer.Exit):
        common.fail("install it with pip install 'dpsynth[ray]' ([bold]not markup[/bold])")
    assert "pip install 'dpsynth[ray]' ([bold]not markup[/bold])" in buffer.getvalue()


def test_recompute_names_the_bound_it_reports_and_writes_strict_json(tmp_path: Path):
    """A source-budget style ledger (approximate-DP charges): PLD is infinite below the event's own
    delta; the JSON must still parse strictly, and every entry says which bound it came from."""
    data = tmp_path / "src.ledger.json"
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-3), privacy_unit="row", source_name="src.csv", signer=None)
    ledger.complete(ledger.charge(operation="release", mechanism="call", delta=1e-4,
                                  event=ApproxDpEvent(1.0, 1e-4)))
    ledger.save(data)
    result = runner.invoke(app, ["ledger", "recompute", str(data), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert out["accountant"] == "min over pld, rdp, basic, stages"
    entry = out["entries"][0]
    assert entry["recomputed_by"] in ("pld", "basic") and entry["recomputed_epsilon"] == pytest.approx(1.0)
    text = runner.invoke(app, ["ledger", "recompute", str(data)])
    assert "(from " in text.output


def test_a_crafted_huge_count_is_refused_or_cheap_never_a_hang(tmp_path: Path):
    import time

    from dpsynth.accounting.accountants import epsilon_by_accountant
    from dpsynth.accounting.serialization import MAX_EVENT_COUNT, LedgerFormatError, event_from_json, event_to_json

    start = time.perf_counter()
    by = epsilon_by_accountant(dp_event.SelfComposedDpEvent(ApproxDpEvent(1.0, 1e-9), 100_000), 1e-3)
    assert "pld" not in by and by["basic"] == pytest.approx(100_000.0)  # basic composition, no 5.8 GiB PLD
    assert time.perf_counter() - start < 30  # a bound on a hang, not a speed claim
    too_many = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(1.0), MAX_EVENT_COUNT + 1)
    with pytest.raises(LedgerFormatError, match="count"):
        event_from_json(event_to_json(too_many))
    # and a charge the file could not load back is refused before it is written, not after
    ledger = Ledger.create(PrivacyBudget(1e9, 1e-5), privacy_unit="row", source_name="s", signer=None)
    with pytest.raises(LedgerFormatError, match="count"):
        ledger.charge(operation="x", mechanism="m", delta=1e-6, event=too_many)
    assert ledger.charges() == []


def test_show_on_a_ledger_too_broken_to_summarise_fails_cleanly(tmp_path: Path):
    broken = tmp_path / "x.ledger.json"
    broken.write_text(json.dumps({"entries": [{"kind": "charge", "seq": 0, "time": "t"}]}))
    result = runner.invoke(app, ["ledger", "show", str(broken)])
    assert result.exit_code == 1
    assert not isinstance(result.exception, (KeyError, TypeError)), result.exception
