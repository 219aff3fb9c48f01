"""A source budget cannot be raised by editing its file, bypassed with ``--ledger``, or split by unit;
``dpsynth mix`` holds its output; ``ledger verify`` says when a card carries non-DP numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
import yaml

from dpsynth.accounting import BudgetExceededError, PrivacyBudget, PureDpEvent
from dpsynth.accounting.format import entry_hash, header_hash, ledger_text
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.ledger_file import LedgerFile, UntrustedBudgetLedgerError
from dpsynth.accounting.signing import Signer
from dpsynth.accounting.source_budget import CallBudgetPlan, find_source_budget, init_source_budget
from dpsynth.accounting.verify import verify_text
from dpsynth.card import build_card, card_text
from dpsynth.cli.budget import accepted_units, source_budget_charge
from dpsynth.evaluate.files import mix_files
from dpsynth.release import OutputBusyError, release_paths, write_release
from dpsynth.tabular.synthesize import PRIVACY_UNIT as ROW
from dpsynth.text.privacy import PRIVACY_UNIT as TEXT

from tests._reservation import held_by_another_run


def make_ledger(epsilon: float = 1.0) -> Ledger:
    ledger = Ledger.create(PrivacyBudget(epsilon, 1e-5), privacy_unit="row", source_name="test")
    ledger.complete(ledger.charge(operation="test.synthesize", mechanism="pure", delta=0.0, event=PureDpEvent(epsilon)))
    return ledger


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET", raising=False)
    return tmp_path / "home"


def _source(tmp_path: Path, name: str = "private.csv") -> Path:
    src = tmp_path / name
    src.write_text("a,b\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(20)))
    return src


def _spend(handle: LedgerFile, epsilon: float) -> None:
    with handle.spend(CallBudgetPlan(epsilon, 1e-7, release="r"), operation="release") as step:
        step.outputs = {"ok": 1}


def _forge_unsigned(path: Path, epsilon_budget: float) -> None:
    """Raise the budget, drop every signature, recompute every hash: an intact, unsigned ledger."""
    doc = json.loads(path.read_text())
    doc["budget"]["epsilon"] = epsilon_budget
    doc["signer"] = None
    doc["header_signature"] = None
    doc["header_hash"] = header_hash(doc)
    prev = doc["header_hash"]
    for entry in doc["entries"]:
        entry["signature"] = None
        entry["prev_hash"] = prev
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
    doc["head_hash"] = prev
    doc["head_signature"] = None
    path.write_text(ledger_text(doc))
    assert verify_text(path.read_text()).status == "unsigned"  # the forgery is intact, as a forger would make it


def test_an_edited_rehashed_unsigned_budget_ledger_is_refused(home, tmp_path):
    src = _source(tmp_path)
    handle = init_source_budget(src, PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    _spend(handle, 0.9)
    _forge_unsigned(handle.path, 1000.0)
    before = handle.path.read_bytes()
    forged = find_source_budget(src)
    with pytest.raises(UntrustedBudgetLedgerError, match="unsigned"):
        _ = forged.remaining
    with pytest.raises(UntrustedBudgetLedgerError):
        _spend(forged, 50.0)
    assert handle.path.read_bytes() == before  # nothing appended
    with pytest.raises(typer.Exit) as exited:  # the CLI's charge: refused, exit 1 (does not verify)
        with source_budget_charge(src, budget=PrivacyBudget(50.0, 1e-7), release=tmp_path / "out.csv",
                                  ledger=None, no_source_budget=False, privacy_unit=ROW):
            pytest.fail("the run must not start")
    assert exited.value.exit_code == 1
    assert handle.path.read_bytes() == before


def test_a_budget_ledger_signed_by_another_key_is_refused_cleanly(home, tmp_path):
    src = _source(tmp_path)
    path = tmp_path / "other.ledger.json"
    stranger = Signer.generate()
    Ledger.create(PrivacyBudget(100.0, 1e-6), privacy_unit=ROW, source_name=str(src), signer=stranger).save(path)
    handle = LedgerFile(path)
    with pytest.raises(UntrustedBudgetLedgerError, match="not by the owner's key"):
        _spend(handle, 1.0)
    with pytest.raises(typer.Exit) as exited:
        with source_budget_charge(src, budget=PrivacyBudget(1.0, 1e-7), release=tmp_path / "out.csv",
                                  ledger=path, no_source_budget=False, privacy_unit=ROW):
            pytest.fail("the run must not start")
    assert exited.value.exit_code == 1
    assert LedgerFile(path, signer=stranger).epsilon_spent == 0.0
    # the key's own holder still spends from it
    _spend(LedgerFile(path, signer=stranger), 1.0)
    assert LedgerFile(path, signer=stranger).epsilon_spent == pytest.approx(1.0)


def test_genuine_budget_ledger_still_spends_and_refuses_overspend(home, tmp_path):
    handle = init_source_budget(_source(tmp_path), PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    _spend(handle, 0.6)
    with pytest.raises(BudgetExceededError):
        _spend(handle, 0.6)
    assert handle.epsilon_spent == pytest.approx(0.6)


def test_ledger_flag_cannot_charge_another_sources_budget(home, tmp_path, capsys):
    spent = _source(tmp_path, "spent.csv")
    other = _source(tmp_path, "other.csv")
    own = init_source_budget(spent, PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    _spend(own, 1.0)
    roomy = init_source_budget(other, PrivacyBudget(10.0, 1e-6), privacy_unit=ROW)
    with pytest.raises(typer.Exit) as exited:
        with source_budget_charge(spent, budget=PrivacyBudget(1.0, 1e-7), release=tmp_path / "out.csv",
                                  ledger=roomy.path, no_source_budget=False, privacy_unit=ROW):
            pytest.fail("the run must not start")
    assert exited.value.exit_code == 2
    assert "has its own source budget" in capsys.readouterr().err
    assert roomy.epsilon_spent == 0.0 and own.epsilon_spent == pytest.approx(1.0)
    # naming the source's own ledger is the same as not naming one: still refused for overspend
    with pytest.raises(typer.Exit):
        with source_budget_charge(spent, budget=PrivacyBudget(0.5, 1e-7), release=tmp_path / "out.csv",
                                  ledger=own.path, no_source_budget=False, privacy_unit=ROW):
            pytest.fail("the run must not start")
    assert own.epsilon_spent == pytest.approx(1.0)


def test_ledger_flag_charges_a_copy_without_its_own_budget(home, tmp_path, capsys):
    original = _source(tmp_path, "private.csv")
    copy = _source(tmp_path, "copy.csv")
    handle = init_source_budget(original, PrivacyBudget(2.0, 1e-6), privacy_unit=ROW)
    with source_budget_charge(copy, budget=PrivacyBudget(1.5, 1e-7), release=tmp_path / "out.csv",
                              ledger=handle.path, no_source_budget=False, privacy_unit=ROW) as step:
        step.outputs = {"release": "out.csv"}
    assert handle.epsilon_spent == pytest.approx(1.5)
    assert str(original.resolve()) in capsys.readouterr().out  # says whose budget it drew on
    with pytest.raises(typer.Exit):
        with source_budget_charge(copy, budget=PrivacyBudget(1.0, 1e-7), release=tmp_path / "out2.csv",
                                  ledger=handle.path, no_source_budget=False, privacy_unit=ROW):
            pytest.fail("the run must not start")
    assert handle.epsilon_spent == pytest.approx(1.5)


def test_a_text_run_on_a_csv_draws_on_the_files_row_budget(home, tmp_path):
    assert accepted_units(Path("texts.csv"), TEXT) == (TEXT, ROW)
    assert accepted_units(Path("texts.jsonl"), TEXT) == (TEXT,)
    assert accepted_units(Path("table.csv"), ROW) == (ROW,)
    src = tmp_path / "reviews.csv"
    src.write_text("text,label\nfine,pos\n")
    handle = init_source_budget(src, PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    with source_budget_charge(src, budget=PrivacyBudget(0.4, 1e-7), release=tmp_path / "out.jsonl",
                              ledger=None, no_source_budget=False, privacy_unit=TEXT) as step:
        step.outputs = {"release": "out.jsonl"}
    assert handle.epsilon_spent == pytest.approx(0.4)
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text('{"text": "fine"}\n')
    init_source_budget(jsonl, PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    with pytest.raises(typer.Exit):  # a JSON-lines record is a text, not a row: the units must match
        with source_budget_charge(jsonl, budget=PrivacyBudget(0.4, 1e-7), release=tmp_path / "o.jsonl",
                                  ledger=None, no_source_budget=False, privacy_unit=TEXT):
            pytest.fail("the run must not start")


def _mix_inputs(tmp_path: Path) -> tuple[Path, Path]:
    real = tmp_path / "real.csv"
    pd.DataFrame({"x": range(10), "y": ["a", "b"] * 5}).to_csv(real, index=False)
    synthetic = tmp_path / "synth.csv"
    pd.DataFrame({"x": range(10, 20), "y": ["b", "a"] * 5}).to_csv(synthetic, index=False)
    return real, synthetic


def test_mix_holds_its_output_while_writing(tmp_path):
    real, synthetic = _mix_inputs(tmp_path)
    out = tmp_path / "hybrid.csv"
    with held_by_another_run(out):
        with pytest.raises(OutputBusyError):
            mix_files(real, synthetic, 0.5, out)
    assert not out.exists() and not release_paths(out).card.exists()
    mix_files(real, synthetic, 0.5, out)
    assert out.exists()


def test_mix_force_over_a_dp_release_leaves_no_stale_ledger(tmp_path):
    real, synthetic = _mix_inputs(tmp_path)
    out = tmp_path / "hybrid.csv"
    ledger = make_ledger()
    write_release(out, lambda tmp: pd.DataFrame({"x": [1]}).to_csv(tmp, index=False), ledger, build_card(ledger))
    assert release_paths(out).ledger.exists()
    mix_files(real, synthetic, 0.5, out, force=True)
    assert not release_paths(out).ledger.exists()  # no ledger that could pass as the hybrid's
    card = yaml.safe_load(release_paths(out).card.read_text())
    assert card["privacy"]["differentially_private"] is False


def _release_with_card(path: Path, card_extra: dict) -> Path:
    ledger = make_ledger()
    card = {**build_card(ledger), **card_extra}
    write_release(path, lambda tmp: pd.DataFrame({"x": [1, 2]}).to_csv(tmp, index=False), ledger, card)
    return path


def test_verify_says_when_the_card_holds_non_dp_numbers(tmp_path):
    flagged = _release_with_card(tmp_path / "a.csv", {"evals": {
        "real_holdout": {"tstr": 0.8, "reads_private_data": True},
        "release_decision_reasons": [{"reason": "x", "reads_private_data": True},
                                     {"reason": "y", "reads_private_data": True}],
        "diversity": {"distinct_1": 0.5, "reads_private_data": False}}})
    paths = release_paths(flagged)
    report = verify_text(paths.ledger.read_text(), data_path=paths.data, card_path=paths.card)
    assert report.ok
    notes = [n for n in report.notes if "without DP" in n]
    assert len(notes) == 1
    assert "evals.real_holdout" in notes[0] and "evals.release_decision_reasons[]" in notes[0]
    assert "diversity" not in notes[0]
    clean = _release_with_card(tmp_path / "b.csv", {})
    paths = release_paths(clean)
    report = verify_text(paths.ledger.read_text(), data_path=paths.data, card_path=paths.card)
    assert report.ok and not [n for n in report.notes if "without DP" in n]
    assert "reads_private_data" not in card_text(build_card(make_ledger()))


def test_a_budget_file_put_in_place_of_another_sources_is_refused(home, tmp_path, capsys):
    spent, roomy = _source(tmp_path, "a.csv"), _source(tmp_path, "b.csv")
    a = init_source_budget(spent, PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    _spend(a, 1.0)
    b = init_source_budget(roomy, PrivacyBudget(100.0, 1e-6), privacy_unit=ROW)
    a.path.write_bytes(b.path.read_bytes())  # owner-signed, intact -- but b's
    with pytest.raises(typer.Exit) as exited:
        with source_budget_charge(spent, budget=PrivacyBudget(50.0, 1e-7), release=tmp_path / "out.csv",
                                  ledger=None, no_source_budget=False, privacy_unit=ROW):
            pytest.fail("the run must not start")
    assert exited.value.exit_code == 1 and "not" in capsys.readouterr().err
    assert LedgerFile(a.path).epsilon_spent == 0.0 and b.epsilon_spent == 0.0
    from typer.testing import CliRunner

    from dpsynth.cli import app

    shown = CliRunner().invoke(app, ["budget", "show"])
    assert shown.exit_code == 1 and "not where" in " ".join(shown.output.split())


def test_budget_show_lists_the_good_budgets_beside_a_bad_file(home, tmp_path):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    good = init_source_budget(_source(tmp_path, "good.csv"), PrivacyBudget(2.0, 1e-6), privacy_unit=ROW)
    _spend(good, 0.5)
    bad = init_source_budget(_source(tmp_path, "bad.csv"), PrivacyBudget(1.0, 1e-6), privacy_unit=ROW)
    _forge_unsigned(bad.path, 1000.0)
    shown = CliRunner().invoke(app, ["budget", "show"])
    text = " ".join(shown.output.split())
    assert shown.exit_code == 1
    assert "spent epsilon=0.5 of 2" in text and "unsigned" in text and "of 1000" not in text
    only_good = CliRunner().invoke(app, ["budget", "show", str(tmp_path / "good.csv")])
    assert only_good.exit_code == 0, only_good.output


def test_mix_force_crash_before_its_card_leaves_no_dp_card_beside_the_hybrid(tmp_path, monkeypatch):
    import dpsynth.evaluate.files as files

    real, synthetic = _mix_inputs(tmp_path)
    out = tmp_path / "hybrid.csv"
    ledger = make_ledger()
    write_release(out, lambda tmp: pd.DataFrame({"x": [1]}).to_csv(tmp, index=False), ledger, build_card(ledger))

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("killed before the card was written")

    monkeypatch.setattr(files, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        mix_files(real, synthetic, 0.5, out, force=True)
    assert len(pd.read_csv(out)) > 1  # the hybrid data was written ...
    assert not release_paths(out).card.exists() and not release_paths(out).ledger.exists()  # ... and no DP card
