"""``dpsynth text synth``: input checks, overwrite protection, outputs, on a tiny random model."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from dpsynth.accounting.verify import verify_text
from dpsynth.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_home_without_source_budget(source_key_home, monkeypatch):
    monkeypatch.setenv("DPSYNTH_SOURCE_BUDGET", "off")  # source budgets: see the test at the end


def _write_jsonl(path, n=12, labelled=False):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            record = {"body": f"Review {i}: great coffee, friendly staff, quiet place to work.", "id": i}
            if labelled:
                record["stars"] = 1 + i % 2
            fh.write(json.dumps(record) + "\n")
    return path


def _synth(tiny_model_dir, *args):
    base = ["text", "synth", *map(str, args), "--model", str(tiny_model_dir), "--method", "private_prediction",
            "--group-size", "3",
            "--max-new-tokens", "6", "--quiet"]
    return runner.invoke(app, base)


def test_jsonl_to_release_with_ledger_card_and_privacy_printed(tiny_model_dir, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", out, "--epsilon", "2", "--num-texts", "3")
    assert result.exit_code == 0, result.output
    assert "Privacy spent: epsilon=" in result.output and "delta=1e-06" in result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3 and all(set(r) == {"text"} for r in records)
    ledger_doc = json.loads((tmp_path / "out.jsonl.ledger.json").read_text(encoding="utf-8"))
    assert verify_text((tmp_path / "out.jsonl.ledger.json").read_text(encoding="utf-8")).ok
    assert ledger_doc["entries"][0]["charge"]["epsilon"] <= 2.0
    assert ledger_doc["source"]["name"] == "in.jsonl"
    assert (tmp_path / "out.jsonl.card.yaml").exists()

    # a second run must not overwrite anything without --force
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("out.jsonl")}
    again = _synth(tiny_model_dir, src, "--text-field", "body", "-o", out, "--epsilon", "2", "--num-texts", "3")
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("out.jsonl")} == before
    forced = _synth(tiny_model_dir, src, "--text-field", "body", "-o", out, "--epsilon", "2", "--num-texts", "3", "--force")
    assert forced.exit_code == 0, forced.output


def test_csv_with_public_label_set(tiny_model_dir, tmp_path):
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "stars"])
        for i in range(10):
            writer.writerow([f"Line {i}, with a comma and \"quotes\".", "pos" if i % 2 else "neg"])
    out = tmp_path / "out.jsonl"
    result = _synth(tiny_model_dir, src, "--text-field", "review", "--label-field", "stars", "--labels", "pos,neg,mixed",
                    "-o", out, "--epsilon", "4", "--num-texts", "2")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in records] == ["pos", "pos", "neg", "neg", "mixed", "mixed"]


@pytest.mark.parametrize(
    "content,suffix,extra,message",
    [
        (None, ".jsonl", [], "does not exist"),
        ('{"body": "ok"}\n{"body": broken\n', ".jsonl", [], "in.jsonl: a line is not valid JSON"),
        ('["not", "an", "object"]\n', ".jsonl", [], "a line is not a JSON object"),
        ('{"other": "x"}\n', ".jsonl", [], "a record has no field 'body'"),
        ('{"body": null}\n', ".jsonl", [], "is null"),
        ("other,col\nx,y\n", ".csv", [], "the header has no column 'body'"),
        ("body\nx,extra\n", ".csv", [], "a row has more fields than the header"),
        ("body\tx\n", ".tsv", [], "unsupported input format"),
        ('{"body": "x", "y": "a"}\n' * 12, ".jsonl", ["--label-field", "y"], "needs --labels"),
        ('{"body": "x", "y": "a"}\n' * 12, ".jsonl", ["--label-field", "y", "--labels", "b"], "not in the declared label set"),
    ],
)
def test_bad_input_gets_a_clear_error_and_writes_nothing(tiny_model_dir, tmp_path, content, suffix, extra, message):
    src = tmp_path / f"in{suffix}"
    if content is not None:
        src.write_bytes(content.encode("utf-8"))
    out = tmp_path / "out.jsonl"
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", out, "--epsilon", "3", *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not any(p.name.startswith("out.jsonl") for p in tmp_path.iterdir())


@pytest.mark.parametrize("epsilon,delta", [("0", "1e-6"), ("nan", "1e-6"), ("inf", "1e-6"), ("-1", "1e-6"),
                                           ("3", "0"), ("3", "1")])
def test_bad_budget_is_refused(tiny_model_dir, tmp_path, epsilon, delta):
    src = _write_jsonl(tmp_path / "in.jsonl")
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", tmp_path / "o.jsonl", "--epsilon", epsilon,
                    "--delta", delta)
    assert result.exit_code == 2, result.output
    assert "epsilon" in result.output or "delta" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_missing_output_folder_is_refused_before_work(tiny_model_dir, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl")
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", tmp_path / "nope" / "o.jsonl", "--epsilon", "3")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_unknown_model_is_a_clear_error(tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl")
    result = runner.invoke(app, ["text", "synth", str(src), "--text-field", "body", "-o", str(tmp_path / "o.jsonl"),
                                 "--epsilon", "3", "--model", str(tmp_path / "no_model_here"), "--group-size", "3"])
    assert result.exit_code == 2
    assert "Error" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_csv_output_is_csv_and_plan_and_default_instruction_are_printed(tiny_model_dir, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl")
    out = tmp_path / "out.csv"
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", out, "--epsilon", "2", "--num-texts", "2")
    assert result.exit_code == 0, result.output
    assert "Method: private_prediction, B=3 (given), T=6, C=" in result.output
    assert "Instruction: Write one realistic body" in result.output
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and list(rows[0]) == ["text"]


def test_auto_group_size_is_printed_before_generating(tiny_model_dir, tmp_path):
    from dpsynth.text.auto import auto_group_size

    src = _write_jsonl(tmp_path / "in.jsonl")
    result = runner.invoke(app, ["text", "synth", str(src), "--text-field", "body", "-o", str(tmp_path / "o.jsonl"),
                                 "--epsilon", "5", "--model", str(tiny_model_dir), "--method", "private_prediction",
                                 "--max-new-tokens", "4", "--num-texts", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert f"B={auto_group_size(5.0, 1e-6, 4, 1.0, 2)} (auto), T=4, C=" in result.output


def test_unknown_output_suffix_is_refused_before_reading(tiny_model_dir, tmp_path):
    src = _write_jsonl(tmp_path / "in.jsonl")
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", tmp_path / "out.txt", "--epsilon", "2")
    assert result.exit_code == 2
    assert "use a .jsonl (JSON lines) or .csv output" in result.output
    assert not (tmp_path / "out.txt").exists()


def test_text_synth_draws_on_the_source_budget_and_is_refused_when_it_is_spent(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET")
    src = _write_jsonl(tmp_path / "in.jsonl")
    args = ["--text-field", "body", "--epsilon", "1", "--num-texts", "2"]
    refused = _synth(tiny_model_dir, src, "-o", tmp_path / "a.jsonl", *args)
    assert refused.exit_code == 2 and "dpsynth budget init" in refused.output
    init = runner.invoke(app, ["budget", "init", str(src), "--epsilon", "2", "--delta", "1e-5"])
    assert init.exit_code == 0, init.output
    for name in ("a.jsonl", "b.jsonl"):
        ok = _synth(tiny_model_dir, src, "-o", tmp_path / name, *args)
        assert ok.exit_code == 0, ok.output
    third = _synth(tiny_model_dir, src, "-o", tmp_path / "c.jsonl", *args)
    assert third.exit_code == 2, third.output
    assert not (tmp_path / "c.jsonl").exists()


# ---- the source budget is charged only after every public argument has been checked

def _budget_bytes(src):
    from dpsynth.accounting.source_budget import find_source_budget

    return find_source_budget(src).path.read_bytes()


@pytest.fixture
def budgeted_source(tmp_path, monkeypatch):
    """A 12-record input with a source budget of epsilon 10 (source budgets on for this test)."""
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET")
    src = _write_jsonl(tmp_path / "in.jsonl", labelled=True)
    init = runner.invoke(app, ["budget", "init", str(src), "--epsilon", "10", "--delta", "1e-5"])
    assert init.exit_code == 0, init.output
    return src


def _flags(tiny_model_dir, **overrides):
    base = {"--text-field": "body", "--epsilon": "1", "--num-texts": "2", "--model": str(tiny_model_dir),
            "--method": "private_prediction", "--group-size": "3", "--max-new-tokens": "4"}
    base.update(overrides)
    return [item for flag, value in base.items() if value is not None for item in (flag, value)]


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"--model": "/nonexistent/model"}, "not found"),
        ({"--num-texts": "0"}, "num_texts"),
        ({"--temperature": "0"}, "temperature"),
        ({"--top-k": "-1"}, "top_k"),
        ({"--max-new-tokens": "0"}, "max_new_tokens"),
        ({"--instruction": "   "}, "instruction"),
        ({"--label-field": "stars", "--labels": "1,1"}, "duplicates"),
        ({"--device": "nonsense"}, "device"),
        ({"--method": "nope"}, "method"),
        ({"--method": "pe", "--variations": "0"}, "variations"),
        ({"--method": "pe", "--iterations": "0"}, "iterations"),
        ({"--method": "pe", "--embedder": "/nonexistent/embedder"}, "/nonexistent/embedder"),
    ],
)
def test_a_bad_public_flag_is_refused_with_the_source_budget_untouched(tiny_model_dir, tmp_path, budgeted_source,
                                                                       overrides, message):
    before = _budget_bytes(budgeted_source)
    result = runner.invoke(app, ["text", "synth", str(budgeted_source), "-o", str(tmp_path / "out.jsonl"), "-q",
                                 *_flags(tiny_model_dir, **overrides)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Charged epsilon" not in result.output
    assert _budget_bytes(budgeted_source) == before  # no charge, no failed entry
    assert not (tmp_path / "out.jsonl").exists()


def test_the_same_flags_made_good_do_charge_the_source_budget(tiny_model_dir, tmp_path, budgeted_source):
    """The check above can fail: a good run does write the source budget."""
    before = _budget_bytes(budgeted_source)
    result = runner.invoke(app, ["text", "synth", str(budgeted_source), "-o", str(tmp_path / "out.jsonl"), "-q",
                                 *_flags(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "Charged epsilon=1" in result.output and _budget_bytes(budgeted_source) != before


def test_an_unsupported_input_suffix_is_refused_before_the_charge(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET")
    src = tmp_path / "in.tsv"
    src.write_text("body\nx\n", encoding="utf-8")
    assert runner.invoke(app, ["budget", "init", str(src), "--epsilon", "10", "--delta", "1e-5"]).exit_code == 0
    before = _budget_bytes(src)
    result = runner.invoke(app, ["text", "synth", str(src), "-o", str(tmp_path / "out.jsonl"), "-q",
                                 *_flags(tiny_model_dir)])
    assert result.exit_code == 2 and "unsupported input format" in result.output
    assert _budget_bytes(src) == before


# ---- an empty input is an empty data set: it runs like a one-record input

@pytest.mark.parametrize("content,suffix", [("", ".jsonl"), ("\n\n", ".jsonl"), ("body\n", ".csv"), ("", ".csv")])
def test_an_empty_input_runs_like_any_other(tiny_model_dir, tmp_path, content, suffix):
    runs = {}
    for name, body in (("empty", content), ("one", '{"body": "one record"}\n' if suffix == ".jsonl" else "body\none\n")):
        src = tmp_path / f"{name}{suffix}"
        src.write_text(body, encoding="utf-8")
        out = tmp_path / f"{name}.out.jsonl"
        result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", out, "--epsilon", "2", "--num-texts", "2")
        assert result.exit_code == 0, result.output
        runs[name] = (len(out.read_text(encoding="utf-8").splitlines()),
                      json.loads((tmp_path / f"{name}.out.jsonl.ledger.json").read_text())["entries"][0]["charge"])
    assert runs["empty"] == runs["one"]  # same number of outputs, same charge


# ---- errors raised after the charge name the path and the user's field, nothing private

@pytest.mark.parametrize(
    "content,suffix,message",
    [
        ('{"body": "a"}\n{"body": "b"}\n{"secretfield": "Alice 123-45-6789"}\n', ".jsonl",
         "a record has no field 'body'"),
        ('{"body": "a"}\n{"body": "b"}\n{"body": "Alice 123-45-6789\n', ".jsonl", "a line is not valid JSON"),
        ('{"body": "a"}\n{"body": "b"}\n["Alice 123-45-6789"]\n', ".jsonl", "a line is not a JSON object"),
        ("secretfield,other\nAlice 123-45-6789,x\n", ".csv", "the header has no column 'body'"),
        ('body\na\nb\n"Alice 123-45-6789"x\n', ".csv", "malformed CSV"),
        ("body\na\nb\nAlice 123-45-6789,x\n", ".csv", "a row has more fields than the header"),
    ],
)
def test_read_errors_name_no_line_field_or_value_of_the_file(tiny_model_dir, tmp_path, content, suffix, message):
    src = tmp_path / f"in{suffix}"
    src.write_text(content, encoding="utf-8")
    result = _synth(tiny_model_dir, src, "--text-field", "body", "-o", tmp_path / "out.jsonl", "--epsilon", "3")
    assert result.exit_code == 2, result.output
    assert message in result.output and f"in{suffix}" in result.output
    for private in ("secretfield", "Alice", "123-45", ":3", "line 3", "other"):
        assert private not in result.output, private


def test_a_label_outside_the_set_names_no_value_after_the_charge(tiny_model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"body": f"text {i}", "y": "a" if i != 4 else "privlabel"}) + "\n"
                           for i in range(8)), encoding="utf-8")
    result = _synth(tiny_model_dir, src, "--text-field", "body", "--label-field", "y", "--labels", "a,b",
                    "-o", tmp_path / "out.jsonl", "--epsilon", "3")
    assert result.exit_code == 2 and "not in the declared label set" in result.output
    assert "privlabel" not in result.output and "#4" not in result.output


def test_an_input_that_is_not_a_regular_file_is_refused_before_the_charge(tiny_model_dir, tmp_path, monkeypatch):
    """A FIFO would block (or a socket fail) only after the charge: refused from its metadata."""
    import os

    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET")
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    init = runner.invoke(app, ["budget", "init", str(fifo), "--epsilon", "10", "--delta", "1e-5"])
    assert init.exit_code == 0, init.output
    before = _budget_bytes(fifo)
    result = runner.invoke(app, ["text", "synth", str(fifo), "-o", str(tmp_path / "out.jsonl"), "-q",
                                 *_flags(tiny_model_dir)])
    assert result.exit_code == 2 and "not a readable regular file" in " ".join(result.output.split()), result.output
    assert _budget_bytes(fifo) == before
