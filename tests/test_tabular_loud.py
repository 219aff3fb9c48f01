"""Issue 9 sections 2-3 (tabular): loud failures from DP outputs, console notices, quiet mode."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app

#: these tests exercise single runs; the source budget (dpsynth budget init) has its own test below
runner = CliRunner(env={"DPSYNTH_SOURCE_BUDGET": "off"})


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DPSYNTH_SOURCE_KEY", raising=False)
    return tmp_path / "home"


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"age": rng.integers(18, 80, n), "region": rng.choice(["north", "south"], n),
                       "user": [f"u{i:05d}" for i in range(n)]})
    path = tmp_path / "in.csv"
    df.to_csv(path, index=False)
    return path


def test_collapsed_column_is_refused_unless_allowed(tmp_path, home, table):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": 600, "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 80, "integer": True},
        "region": {"type": "categorical", "categories": ["north", "south"]},
        "user": {"type": "categorical"}}}))
    out = tmp_path / "out.csv"
    res = run("tabular", "synth", table, "-o", out, "-e", 1, "--metadata", meta, "--method", "independent", "-q")
    assert res.exit_code == 2
    assert "'user'" in res.output and "type: id" in res.output and "--allow-degenerate" in res.output
    assert not out.exists() and not (tmp_path / "out.csv.ledger.json").exists()
    res = run("tabular", "synth", table, "-o", out, "-e", 1, "--metadata", meta, "--method", "independent", "-q",
              "--allow-degenerate")
    assert res.exit_code == 0, res.output
    assert set(pd.read_csv(out)["user"]) == {"__other__"}


def test_metadata_categories_matching_no_value_are_refused_after_the_charge(tmp_path, home, table):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": 600, "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 80, "integer": True},
        "region": {"type": "categorical", "categories": ["North", "South"]},  # case mismatch
        "user": {"type": "id"}}}))
    res = run("tabular", "synth", table, "-o", tmp_path / "o.csv", "-e", 2, "--metadata", meta, "--method", "independent",
              "-q")
    assert res.exit_code == 2 and "'region'" in res.output and "match none of its categories" in res.output
    assert "case" in res.output and not (tmp_path / "o.csv").exists()


def test_domain_report_quality_key_notice_and_large_epsilon(tmp_path, home, table):
    out = tmp_path / "o.csv"
    res = run("tabular", "synth", table, "-o", out, "-e", 20, "--method", "independent", "--allow-degenerate")
    assert res.exit_code == 0, res.output
    assert "weak guarantee" in res.output
    assert "source key" in res.output and (home / "source.key").exists()  # one-line notice (dpsynth.accounting.keys)
    assert "Domain stage (DP outputs" in res.output and "region: type categorical (DP type step)" in res.output
    assert "per column (1-way TVD, not DP)" in res.output and "public bins" in res.output
    again = run("tabular", "synth", table, "-o", tmp_path / "o2.csv", "-e", 1, "--method", "independent",
                "--allow-degenerate")
    assert "source key" not in again.output and "weak guarantee" not in again.output


def test_quiet_silences_warnings_and_bounds_warning_is_one_line(tmp_path, home):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({k: rng.uniform(1, 5, 30).round(3) for k in "abc"})
    df.to_csv(tmp_path / "small.csv", index=False)
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": 30, "columns": {k: {"type": "numerical"} for k in "abc"}}))
    res = run("tabular", "synth", tmp_path / "small.csv", "-o", tmp_path / "o.csv", "-e", 0.1, "--metadata", meta,
              "--method", "independent")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "DP bounds are mostly noise" in ln]
    # one line for the run; each column's bounds are noise except with the stated ~1% chance
    assert len(lines) == 1 and sum(f"{k}," in lines[0] or f"{k};" in lines[0] for k in "abc") >= 2
    assert ".py:" not in res.output  # no Python source lines
    quiet = run("tabular", "synth", tmp_path / "small.csv", "-o", tmp_path / "q.csv", "-e", 0.1, "--metadata", meta,
                "--method", "independent", "-q")
    assert quiet.exit_code == 0 and "Warning" not in quiet.output and "mostly noise" not in quiet.output


def test_output_equal_to_input_is_refused_and_force_is_a_flag(tmp_path, home, table):
    res = run("tabular", "synth", table, "-o", table, "-e", 1, "--force")
    assert res.exit_code == 2 and "input" in res.output
    assert "u00000" in table.read_text()


def test_max_time_reaches_the_method_or_is_a_clear_error(tmp_path, home, table):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": 600, "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 80, "integer": True},
        "region": {"type": "categorical", "categories": ["north", "south"]}, "user": {"type": "id"}}}))
    res = run("tabular", "synth", table, "-o", tmp_path / "o.csv", "-e", 1, "--metadata", meta, "--method", "mst",
              "--max-time", 30, "-q")
    if res.exit_code != 0:
        assert "--max-time is not supported by method 'mst'" in res.output
    bad = run("tabular", "synth", table, "-o", tmp_path / "o.csv", "-e", 1, "--max-time", -1)
    assert bad.exit_code == 2 and "--max-time" in bad.output


def test_csv_parse_errors_describe_no_private_row(tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text('a,b\n1,2\n3,"4\n5,6,7,8\n9,SECRET,1,2,3\n')
    res = run("tabular", "synth", broken, "-o", tmp_path / "o.csv", "-e", 1)
    assert res.exit_code == 2 and "cannot parse" in res.output
    assert "line" not in res.output.lower() and "SECRET" not in res.output


def test_library_warns_once_for_unreliable_bounds_listing_the_columns():
    import warnings

    from dpsynth.tabular import UnreliableDPBoundsWarning, synthesize

    rng = np.random.default_rng(0)
    df = pd.DataFrame({k: rng.uniform(1, 5, 30) for k in "abc"})
    meta = {"row_count": 30, "columns": {k: {"type": "numerical"} for k in "abc"}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        synthesize(df, epsilon=0.1, metadata=meta, method="independent", progress=False)
    bounds = [w for w in caught if issubclass(w.category, UnreliableDPBoundsWarning)]
    text = str(bounds[0].message)
    assert len(bounds) == 1 and sum(f"{k}," in text or f"{k};" in text for k in "abc") >= 2


def test_wide_tables_get_a_pre_start_note_and_the_domain_plan_is_announced(tmp_path, home):
    rng = np.random.default_rng(0)
    cols = {f"c{i}": rng.integers(0, 3, 200) for i in range(20)}
    pd.DataFrame(cols).to_csv(tmp_path / "wide.csv", index=False)
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": 200, "columns": {
        k: {"type": "categorical", "categories": ["0", "1", "2"]} for k in cols}}))
    res = run("tabular", "synth", tmp_path / "wide.csv", "-o", tmp_path / "o.csv", "-e", 1, "--metadata", meta,
              "--method", "independent")
    assert res.exit_code == 0, res.output
    assert "20 modelled columns" in res.output and "1,140 three-column marginals" in res.output
    assert "DP domain stage" not in res.output  # complete metadata: nothing left to DP
    plain = run("tabular", "synth", tmp_path / "wide.csv", "-o", tmp_path / "p.csv", "-e", 1, "--method", "independent",
                "--allow-degenerate")
    assert "leaves types, row_count, values to a DP domain stage" in plain.output
    assert "category values need a noisy count above" in plain.output


def test_source_budget_is_charged_before_the_input_is_read(tmp_path, home, table):
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": 600, "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 80, "integer": True},
        "region": {"type": "categorical", "categories": ["north", "south"]}, "user": {"type": "id"}}}))
    strict = CliRunner(env={"DPSYNTH_SOURCE_BUDGET": ""})

    def synth(out):
        return strict.invoke(app, [str(a) for a in ("tabular", "synth", table, "-o", out, "-e", 1, "--metadata", meta,
                                                    "--method", "independent", "-q")])

    missing = synth(tmp_path / "o0.csv")
    assert missing.exit_code == 2 and "budget init" in missing.output and not (tmp_path / "o0.csv").exists()
    assert strict.invoke(app, ["budget", "init", str(table), "--epsilon", "2", "--delta", "1e-5"]).exit_code == 0
    assert synth(tmp_path / "o1.csv").exit_code == 0 and synth(tmp_path / "o2.csv").exit_code == 0
    third = synth(tmp_path / "o3.csv")
    assert third.exit_code == 2 and not (tmp_path / "o3.csv").exists()
    bad = strict.invoke(app, ["tabular", "synth", str(table), "-o", str(tmp_path / "o4.csv"), "-e", "1", "--rows", "0"])
    assert bad.exit_code == 2 and "rows" in bad.output  # a bad flag is refused before any charge


def test_a_mostly_empty_nullable_column_is_a_warning_not_a_refusal(tmp_path, home):
    rng = np.random.default_rng(0)
    n = 800
    df = pd.DataFrame({"region": rng.choice(["north", "south"], n), "note": [""] * n})
    df.to_csv(tmp_path / "in.csv", index=False)
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"row_count": n, "columns": {
        "region": {"type": "categorical", "categories": ["north", "south"]},
        "note": {"type": "categorical", "categories": ["x"], "nullable": True}}}))
    res = run("tabular", "synth", tmp_path / "in.csv", "-o", tmp_path / "o.csv", "-e", 2, "--metadata", meta,
              "--method", "independent")
    assert res.exit_code == 0, res.output
    assert "'note'" in res.output and "declared nullable" in res.output


def test_metadata_files_are_written_as_yaml_only(tmp_path):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    src = tmp_path / "p.csv"
    src.write_text("age,sex\n31,F\n45,M\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["tabular", "metadata-template", str(src), "-o", str(tmp_path / "m.json")])
    assert refused.exit_code == 2 and "YAML" in refused.output and not (tmp_path / "m.json").exists()
    ok = runner.invoke(app, ["tabular", "metadata-template", str(src), "-o", str(tmp_path / "m.yaml"), "-q"])
    assert ok.exit_code == 0
    import yaml

    assert set(yaml.safe_load((tmp_path / "m.yaml").read_text())["columns"]) == {"age", "sex"}
