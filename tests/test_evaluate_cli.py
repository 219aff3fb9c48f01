"""``dpsynth evaluate`` / ``dpsynth mix`` round trips: report files, card updates, refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dpsynth.accounting import Ledger, PrivacyBudget, PureDpEvent
from dpsynth.card import build_card, read_card
from dpsynth.cli import app
from dpsynth.release import write_release


runner = CliRunner()
WORDS = ("the a patient reported mild severe pain after surgery since monday with fever cough doctor "
         "nurse ward night morning gave took rest slept").split()


def population(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x.round(4), "z": rng.uniform(0, 10, n).round(4),
                         "c": rng.choice(["a", "b", "c"], n), "label": np.where(x > 0, "pos", "neg")})


def make_ledger(epsilon=1.0, source="test"):
    ledger = Ledger.create(PrivacyBudget(epsilon, 1e-5), privacy_unit="row", source_name=source)
    entry = ledger.charge(operation="test.synthesize", mechanism="pure", delta=0.0, event=PureDpEvent(epsilon))
    ledger.complete(entry)
    return ledger


def release_table(path, frame, epsilon=1.0):
    ledger = make_ledger(epsilon)
    write_release(path, lambda tmp: frame.to_csv(tmp, index=False), ledger, build_card(ledger))
    return path


def release_texts(path, records, epsilon=1.0):
    ledger = make_ledger(epsilon)

    def write(tmp):
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    write_release(path, write, ledger, build_card(ledger))
    return path


@pytest.fixture()
def table_files(tmp_path):
    real = population(400, 0)
    mask = np.random.default_rng(1).random(len(real)) < 0.5
    real[mask].to_csv(tmp_path / "private.csv", index=False)
    real[~mask].to_csv(tmp_path / "holdout.csv", index=False)
    return tmp_path, real[mask]


def test_evaluate_table_round_trip_updates_card_and_refuses_overwrite(table_files):
    folder, _ = table_files
    synth = release_table(folder / "synth.csv", population(300, 7))
    args = ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
            "--private", str(folder / "private.csv"), "--target", "label", "--card-private-evals"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "release_decision" in result.output
    report = json.loads((folder / "synth.csv.eval.json").read_text())
    assert report["kind"] == "table"
    assert report["privacy_audit"]["reads_private_data"] is True
    assert report["privacy_audit"]["epsilon_lb"] <= 1.0
    assert report["release_decision"]["decision"] in ("ship", "regenerate")
    card = read_card(folder / "synth.csv.card.yaml")
    assert card["release_decision"] == report["release_decision"]["decision"]
    assert card["evals"]["privacy_audit"]["reads_private_data"] is True
    assert card["evals"]["real_holdout"]["reads_private_data"] is True
    assert card["evals"]["real_holdout"]["tstr"]["tstr"] == pytest.approx(report["utility"]["tstr"]["tstr"])
    assert card["privacy"]["epsilon"] == pytest.approx(1.0)  # the ledger-derived block is untouched
    rounds = card["evals"]["diversity_metrics"]["history"]
    assert len(rounds) == 1 and rounds[0]["private"]["tvd_3way_mean"] == pytest.approx(
        report["fidelity"]["marginals"]["3way"]["mean"])
    html = (folder / "synth.csv.eval.html").read_text()
    assert "<svg" in html and "not for publication" in html
    assert "src=\"http" not in html and "href=\"http" not in html and "<script" not in html

    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    assert runner.invoke(app, args + ["--force"]).exit_code == 0


def test_evaluate_rejects_a_copying_generator_in_the_card(table_files):
    folder, private = table_files
    synth = release_table(folder / "copy.csv", private)
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
                                 "--private", str(folder / "private.csv"), "--target", "label",
                                 "--card-private-evals"])
    assert result.exit_code == 0, result.output
    card = read_card(folder / "copy.csv.card.yaml")
    assert card["release_decision"] == "reject"
    reasons = card["evals"]["release_decision_reasons"]
    audit = [r for r in reasons if "exceeds the ledger epsilon" in r["reason"]]
    assert audit and audit[0]["reads_private_data"] is True and audit[0]["reads_holdout_data"] is True
    assert set(audit[0]["sources"]) >= {"private", "real_holdout", "ledger"}
    # every reason in the card says what it read; a number from real records is never unmarked
    for reason in reasons:
        assert set(reason) >= {"reason", "outcome", "reads_private_data", "reads_holdout_data", "sources"}
        assert reason["reads_private_data"] == bool({"private", "real_holdout", "canaries"} & set(reason["sources"]))
    evidence = card["evals"]["release_decision_evidence"]
    assert evidence["decision"] == "reject" and evidence["reads_private_data"] is True


def test_by_default_the_card_gets_only_numbers_from_the_synthetic_data(table_files):
    """The card travels with the data: no number computed from real records, and no release
    decision (it reads them), unless --card-private-evals; the report keeps everything."""
    from dpsynth.accounting.verify import card_sections_from_real_data
    from dpsynth.evaluate.card_summary import WITHHELD

    folder, private = table_files
    synth = release_table(folder / "copy.csv", private)  # a copying generator: the report rejects it
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
                                 "--private", str(folder / "private.csv"), "--target", "label"])
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "copy.csv.eval.json").read_text())
    assert report["release_decision"]["decision"] == "reject"  # in the report ...
    card_path = folder / "copy.csv.card.yaml"
    card = read_card(card_path)
    assert card["release_decision"] is None  # ... not in the card
    evals = card["evals"]
    assert evals["real_holdout"] == WITHHELD and evals["privacy_audit"] == WITHHELD
    assert evals["release_decision_evidence"] == WITHHELD and evals["release_decision_reasons"] == []
    latest = evals["diversity_metrics"]["latest"]
    assert "private" not in latest and latest["reads_private_data"] is False
    assert [set(r) for r in evals["diversity_metrics"]["history"]] == [set(latest)]  # rounds kept, stripped
    assert card_sections_from_real_data(card_path) == []  # verify has nothing to warn about
    assert "tstr" not in card_path.read_text()


def test_a_default_evaluate_strips_what_an_earlier_private_one_put_in_the_card(table_files):
    from dpsynth.accounting.verify import card_sections_from_real_data

    folder, _ = table_files
    synth = release_table(folder / "twice.csv", population(200, 24))
    args = ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"), "--target", "label"]
    assert runner.invoke(app, args + ["--card-private-evals"]).exit_code == 0
    card_path = folder / "twice.csv.card.yaml"
    assert card_sections_from_real_data(card_path)  # the opt-in run put them there
    assert read_card(card_path)["release_decision"] is not None
    again = runner.invoke(app, args + ["--force"])
    assert again.exit_code == 0, again.output
    assert card_sections_from_real_data(card_path) == []  # history, decision, every block: gone
    assert read_card(card_path)["release_decision"] is None


def test_a_second_evaluate_on_the_same_report_is_refused_while_the_first_runs(table_files):
    from tests._reservation import held_by_another_run

    folder, _ = table_files
    synth = release_table(folder / "busy.csv", population(200, 23))
    with held_by_another_run(folder / "busy.csv.eval.json"):
        result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
                                     "--target", "label", "--no-card"])
        assert result.exit_code == 2, result.output
    assert not (folder / "busy.csv.eval.json").exists()


@pytest.mark.usefixtures("source_key_home")
def test_evaluate_rebinds_the_rewritten_card_in_a_bound_ledger(table_files):
    from dpsynth.accounting.verify import verify_text

    folder, _ = table_files
    synth = release_table(folder / "bound.csv", population(200, 21))
    ledger_path = folder / "bound.csv.ledger.json"
    assert Ledger.load(ledger_path).last_release() is not None  # the release writer bound data and card
    card_path = folder / "bound.csv.card.yaml"
    before = verify_text(ledger_path.read_text(encoding="utf-8"), data_path=synth, card_path=card_path)
    assert before.ok, before.problems
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
                                 "--target", "label"])
    assert result.exit_code == 0, result.output
    after = verify_text(ledger_path.read_text(encoding="utf-8"), data_path=synth, card_path=card_path)
    assert after.ok and after.files_checked, after.problems
    ledger = Ledger.load(ledger_path)
    assert [e["kind"] for e in ledger.entries][-2:] == ["release", "release"]  # written, then re-bound
    assert ledger.epsilon_spent == pytest.approx(1.0)  # evaluation charges nothing


def test_evaluate_refuses_to_rewrite_a_card_bound_by_another_key(table_files, tmp_path, monkeypatch):
    folder, _ = table_files
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "owner_home"))
    monkeypatch.delenv("DPSYNTH_SIGNING_KEY", raising=False)
    synth = release_table(folder / "theirs.csv", population(200, 22))
    card_before = (folder / "theirs.csv.card.yaml").read_bytes()
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "someone_else"))
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv")])
    assert result.exit_code == 2 and "--no-card" in result.output
    assert not (folder / "theirs.csv.eval.json").exists()  # refused before any work
    assert (folder / "theirs.csv.card.yaml").read_bytes() == card_before
    ok = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"), "--no-card"])
    assert ok.exit_code == 0, ok.output


def test_evaluate_without_ledger_rejects_and_writes_no_card(table_files):
    folder, _ = table_files
    population(200, 9).to_csv(folder / "bare.csv", index=False)
    result = runner.invoke(app, ["evaluate", str(folder / "bare.csv"), "--real-holdout",
                                 str(folder / "holdout.csv"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["release_decision"]["decision"] == "reject"
    assert not (folder / "bare.csv.card.yaml").exists()


@pytest.mark.parametrize("extra, message", [
    (["--target", "nope"], "target column 'nope' not found"),
    (["--target", "label", "--label-field", "y"], "not both"),
])
def test_evaluate_bad_arguments_are_clear_errors(table_files, extra, message):
    folder, _ = table_files
    synth = release_table(folder / "s.csv", population(100, 3))
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv")] + extra)
    assert result.exit_code == 2
    assert message in result.output
    assert not (folder / "s.csv.eval.json").exists()


def test_evaluate_bad_input_files(table_files):
    folder, _ = table_files
    synth = release_table(folder / "s.csv", population(100, 3))
    missing = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "missing.csv")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (folder / "other.csv").write_text("a,b\n1,2\n")
    mismatch = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "other.csv")])
    assert mismatch.exit_code == 2 and "column mismatch" in mismatch.output
    (folder / "bad.csv").write_text('x,z,c,label\n1,2,"unterminated\n')
    bad = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "bad.csv")])
    assert bad.exit_code == 2 and "cannot parse" in bad.output


def test_evaluate_refuses_a_partitioned_release_directory_clearly(table_files):
    folder, _ = table_files
    parts = folder / "synth.parquet"
    parts.mkdir()
    population(50, 4).to_csv(parts / "part-0.csv", index=False)
    before = sorted(p.name for p in folder.rglob("*"))
    res = runner.invoke(app, ["evaluate", str(parts), "--real-holdout", str(folder / "holdout.csv")])
    assert res.exit_code == 2 and "partitioned" in res.output and "not supported" in res.output, res.output
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("flag, target", [
    ("--json-out", "holdout.csv"),          # the holdout itself
    ("--html-out", "private.csv"),          # the private data
    ("--json-out", "s.csv"),                # the synthetic data
    ("--json-out", "s.csv.ledger.json"),    # the release's ledger
    ("--html-out", "s.csv.card.yaml"),      # the release's card
])
def test_evaluate_never_writes_a_report_over_an_input_even_with_force(table_files, flag, target):
    folder, _ = table_files
    synth = release_table(folder / "s.csv", population(100, 3))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
                                 "--private", str(folder / "private.csv"), flag, str(folder / target), "--force"])
    assert result.exit_code == 2, result.output
    assert "never overwrites an input" in result.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_evaluate_refuses_one_path_for_both_reports(table_files):
    folder, _ = table_files
    synth = release_table(folder / "s.csv", population(100, 3))
    same = folder / "report.out"
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(folder / "holdout.csv"),
                                 "--json-out", str(same), "--html-out", str(same)])
    assert result.exit_code == 2 and "same file" in result.output
    assert not same.exists()


def corpus(n, seed, label_words=False):
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        label = str(rng.choice(["pos", "neg"]))
        vocab = WORDS[:12] if (label == "pos" or not label_words) else WORDS[10:]
        records.append({"text": " ".join(rng.choice(vocab, 12)), "label": label})
    return records


def test_evaluate_texts_tracks_diversity_across_rounds(tmp_path):
    holdout = tmp_path / "holdout.jsonl"
    holdout.write_text("".join(json.dumps(r) + "\n" for r in corpus(120, 0, True)))
    synth = release_texts(tmp_path / "synth.jsonl", corpus(120, 1, True))
    args = ["evaluate", str(synth), "--real-holdout", str(holdout), "--label-field", "label",
            "--embedder", "hashing", "--card-private-evals"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads((tmp_path / "synth.jsonl.eval.json").read_text())
    assert report["kind"] == "text"
    assert report["diversity"]["reads_private_data"] is False
    assert report["distribution_shift"]["reads_private_data"] is True
    assert report["utility"]["tstr"]["tstr"] > 0.8
    assert runner.invoke(app, args + ["--force"]).exit_code == 0
    card = yaml.safe_load((tmp_path / "synth.jsonl.card.yaml").read_text())
    history = card["evals"]["diversity_metrics"]["history"]
    assert len(history) == 2
    assert history[0]["publishable"]["self_bleu"] == pytest.approx(report["diversity"]["self_bleu"])
    assert history[0]["private"]["mauve"] == pytest.approx(report["distribution_shift"]["mauve"])
    assert history[0]["reads_private_data"] is True


def test_evaluate_texts_missing_field_is_clear(tmp_path):
    holdout = tmp_path / "holdout.jsonl"
    holdout.write_text(json.dumps({"body": "x"}) + "\n")
    synth = release_texts(tmp_path / "s.jsonl", corpus(10, 1))
    result = runner.invoke(app, ["evaluate", str(synth), "--real-holdout", str(holdout), "--embedder", "hashing"])
    assert result.exit_code == 2 and "no 'text' field" in result.output


# ----------------------------------------------------------------------------- mix


def _mix_table(tmp_path, ratio="0.25"):
    real = population(100, 0)
    real.to_csv(tmp_path / "real.csv", index=False)
    synth = release_table(tmp_path / "synth.csv", population(300, 5))
    out = tmp_path / "hybrid.csv"
    result = runner.invoke(app, ["mix", str(tmp_path / "real.csv"), str(synth), "--ratio", ratio,
                                 "-o", str(out), "--seed", "0"])
    assert result.exit_code == 0, result.output
    return out, result


@pytest.mark.usefixtures("source_key_home")
def test_mix_ledger_records_real_records_and_card_says_not_dp(tmp_path):
    """Issue 8 §6: the hybrid's ledger has a real-records-included entry; its card is not a DP claim."""
    from dpsynth.accounting.verify import verify_text

    out, result = _mix_table(tmp_path)
    assert "contains real records: not differentially private" in result.output
    ledger_path = tmp_path / "hybrid.csv.ledger.json"
    ledger = Ledger.load(ledger_path)
    assert ledger.contains_real_records
    synthetic_ledger = Ledger.load(tmp_path / "synth.csv.ledger.json")
    assert not synthetic_ledger.contains_real_records  # the input release is untouched
    (entry,) = [e for e in ledger.entries if e["kind"] == "real-records-included"]
    assert entry["count"] == 100
    assert entry["differentially_private"] is False
    assert entry["source_fingerprint"].startswith("hmac-sha256-salted:")
    assert ledger.epsilon_spent == pytest.approx(synthetic_ledger.epsilon_spent)  # nothing charged
    report = verify_text(ledger_path.read_text(encoding="utf-8"))
    assert report.ok and report.contains_real_records
    card = read_card(tmp_path / "hybrid.csv.card.yaml")
    assert card["privacy"]["differentially_private"] is False
    assert card["privacy"]["contains_real_records"] is True and card["privacy"]["real_records_included"] == 100
    # 100 real rows at ratio 0.25 -> 33 synthetic rows: 33/133 != 0.25, and the card says so
    assert card["synthetic_ratio"] == pytest.approx(33 / 133)
    assert "rounded" in card["mix"]["note"] and "0.25" in card["mix"]["note"]
    assert "rounded" in result.output


@pytest.mark.usefixtures("source_key_home")
def test_mix_with_an_exact_ratio_has_no_rounding_note(tmp_path):
    _mix_table(tmp_path, ratio="0.5")
    card = read_card(tmp_path / "hybrid.csv.card.yaml")
    assert card["synthetic_ratio"] == pytest.approx(0.5) and "note" not in card["mix"]


@pytest.mark.usefixtures("source_key_home")
def test_ledger_verify_and_show_of_a_hybrid_say_not_dp(tmp_path):
    out, _ = _mix_table(tmp_path)
    for command in ("verify", "show"):
        shown = runner.invoke(app, ["ledger", command, str(out)])
        assert "contains real records: not differentially private" in shown.output, (command, shown.output)
    verified = runner.invoke(app, ["ledger", "verify", str(out)])
    assert verified.exit_code != 0  # never a plain pass: "OK ... spend within budget" is gone
    synthetic = runner.invoke(app, ["ledger", "verify", str(tmp_path / "synth.csv")])
    assert "contains real records" not in synthetic.output  # the input release is still a DP release


def test_mix_writes_hybrid_with_ratio_in_card(tmp_path):
    real = population(100, 0)
    real.to_csv(tmp_path / "real.csv", index=False)
    synth = release_table(tmp_path / "synth.csv", population(300, 5))
    out = tmp_path / "hybrid.csv"
    result = runner.invoke(app, ["mix", str(tmp_path / "real.csv"), str(synth), "--ratio", "0.25",
                                 "-o", str(out), "--seed", "0"])
    assert result.exit_code == 0, result.output
    hybrid = pd.read_csv(out)
    assert len(hybrid) == 133  # 100 real + round(0.25 / 0.75 * 100) synthetic
    merged = hybrid.merge(real.round(4), how="inner")
    assert len(merged) == 100  # every real row kept
    card = read_card(tmp_path / "hybrid.csv.card.yaml")
    assert card["synthetic_ratio"] == pytest.approx(33 / 133)
    assert card["mix"]["contains_real_records"] is True
    assert (tmp_path / "hybrid.csv.ledger.json").exists()
    refused = runner.invoke(app, ["mix", str(tmp_path / "real.csv"), str(synth), "--ratio", "0.25", "-o", str(out)])
    assert refused.exit_code == 2 and "refusing to overwrite" in refused.output


@pytest.mark.parametrize("ratio, message", [("1.0", "ratio must be in [0, 1)"), ("nan", "ratio must be in"),
                                            ("0.9", "need 900 synthetic records")])
def test_mix_bad_ratio_or_too_few_records(tmp_path, ratio, message):
    population(100, 0).to_csv(tmp_path / "real.csv", index=False)
    population(50, 1).to_csv(tmp_path / "synth.csv", index=False)
    result = runner.invoke(app, ["mix", str(tmp_path / "real.csv"), str(tmp_path / "synth.csv"),
                                 "--ratio", ratio, "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out.csv").exists()


def test_mix_texts_jsonl(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps(r) + "\n" for r in corpus(40, 0)))
    synth = tmp_path / "synth.jsonl"
    synth.write_text("".join(json.dumps(r) + "\n" for r in corpus(40, 1)))
    out = tmp_path / "mixed.jsonl"
    result = runner.invoke(app, ["mix", str(real), str(synth), "--ratio", "0.5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 80 and all("text" in r for r in lines)
    card = read_card(tmp_path / "mixed.jsonl.card.yaml")
    assert card["synthetic_ratio"] == pytest.approx(0.5)
    # no synthetic ledger: no epsilon at all, and the card still says the file is not DP
    assert card["privacy"]["differentially_private"] is False and "epsilon" not in card["privacy"]
    assert "note" not in card["mix"]  # 40 + 40 is exactly the requested share


def test_evaluate_texts_with_canary_file_rejects_a_copying_generator(tmp_path):
    from dpsynth.evaluate.contamination import make_canaries, plant_canaries, save_canaries

    private = [r["text"] for r in corpus(150, 2)]
    canaries = make_canaries(private, 120, seed=4)
    planted = plant_canaries(private, canaries, seed=5)
    save_canaries(tmp_path / "canaries.json", canaries)
    (tmp_path / "private.txt").write_text("\n".join(planted) + "\n")
    (tmp_path / "holdout.txt").write_text("\n".join(r["text"] for r in corpus(100, 3)) + "\n")
    copy = release_texts(tmp_path / "copy.jsonl", [{"text": t} for t in planted])
    result = runner.invoke(app, ["evaluate", str(copy), "--real-holdout", str(tmp_path / "holdout.txt"),
                                 "--private", str(tmp_path / "private.txt"), "--canaries",
                                 str(tmp_path / "canaries.json"), "--embedder", "hashing", "--json",
                                 "--card-private-evals"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["contamination"]["canaries"]["leaked_members"] == sum(c.member for c in canaries)
    assert report["privacy_audit"]["epsilon_lb"] > 1.0
    assert report["release_decision"]["decision"] == "reject"
    card = read_card(tmp_path / "copy.jsonl.card.yaml")
    assert card["release_decision"] == "reject"
    assert card["evals"]["contamination_scan"]["canaries"]["leaked_members"] > 0
