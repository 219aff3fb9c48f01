"""``--target`` / ``--workload``: public method options that reach the plan, the ledger and the card."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from dpsynth.cli import app

runner = CliRunner()


def write_inputs(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    a = rng.choice(["x", "y", "z"], n)
    df = pd.DataFrame({"a": a, "b": rng.choice(["p", "q"], n), "label": np.where(rng.random(n) < 0.8, a == "x", False)})
    data = tmp_path / "in.csv"
    df.to_csv(data, index=False)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"row_count": n, "columns": {
        "a": {"type": "categorical", "categories": ["x", "y", "z"]},
        "b": {"type": "categorical", "categories": ["p", "q"]},
        "label": {"type": "boolean"},
    }}))
    work = tmp_path / "workload.json"
    work.write_text(json.dumps([["a", "label"], ["b", "label"]]))
    return data, meta, work


def test_target_and_workload_reach_the_ledger_and_card(tmp_path):
    data, meta, work = write_inputs(tmp_path)
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["tabular", "synth", str(data), "-o", str(out), "--epsilon", "2", "--metadata", str(meta),
                              "--method", "aim", "--target", "label", "--workload", str(work), "--quiet"])
    assert res.exit_code == 0, res.output
    ledger = json.loads((tmp_path / "out.csv.ledger.json").read_text())
    fit = [e for e in ledger["entries"] if e["kind"] == "charge" and e["operation"] == "tabular.fit.aim"]
    assert fit and fit[0]["parameters"]["target"] == "label"
    assert fit[0]["parameters"]["workload"] == [["a", "label"], ["b", "label"]]
    assert "label" in (tmp_path / "out.csv.card.yaml").read_text()


def test_bad_target_is_refused_with_a_clear_error_and_nothing_written(tmp_path):
    data, meta, work = write_inputs(tmp_path)
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["tabular", "synth", str(data), "-o", str(out), "--epsilon", "1", "--metadata", str(meta),
                              "--method", "mst", "--target", "nope", "--quiet"])
    assert res.exit_code != 0 and "nope" in res.output
    assert not out.exists()
