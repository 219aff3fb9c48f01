"""``dpsynth tabular synth``: round trip with ``dpsynth ledger verify`` and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app

#: these tests exercise single runs; the source budget (dpsynth budget init) has its own test below
runner = CliRunner(env={"DPSYNTH_SOURCE_BUDGET": "off"})


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "score": rng.normal(0, 1, n).round(3),
            "group": rng.choice(["a", "b", "c"], n),
            "flag": rng.random(n) < 0.4,
        }
    )
    df.loc[0, "group"] = "UNIQUE_SECRET"
    df.loc[1, "score"] = 1234.5
    data = tmp_path / "in.csv"
    df.to_csv(data, index=False)
    meta = tmp_path / "meta.json"
    meta.write_text(
        json.dumps(
            {
                "row_count": 400,
                "columns": {
                    "age": {"type": "numerical", "lower": 20, "upper": 70, "integer": True, "bins": 10},
                    "score": {"type": "numerical", "lower": -3, "upper": 3, "bins": 10},
                    "group": {"type": "categorical", "categories": ["a", "b", "c"]},
                    "flag": {"type": "boolean"},
                },
            }
        )
    )
    return tmp_path, data, meta


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_round_trip_writes_release_and_ledger_verifies(inputs):
    tmp, data, meta = inputs
    out = tmp / "out.csv"
    res = run("tabular", "synth", data, "-o", out, "--epsilon", 1, "--metadata", meta, "--method", "independent",
              "--seed", 3, "--quiet")
    assert res.exit_code == 0, res.output
    assert "Privacy spent: epsilon=" in res.output and "Not DP" in res.output
    for suffix in ("", ".ledger.json", ".card.yaml"):
        assert (tmp / f"out.csv{suffix}").exists()
    synth = pd.read_csv(out)
    assert list(synth.columns) == ["age", "score", "group", "flag"] and len(synth) == 400
    assert "UNIQUE_SECRET" not in set(synth["group"].dropna())
    assert synth["score"].max() <= 3.0
    verify = run("ledger", "verify", out)
    assert verify.exit_code == 0, verify.output
    ledger = json.loads((tmp / "out.csv.ledger.json").read_text())
    charged = [e for e in ledger["entries"] if e["kind"] == "charge"]
    assert sum(e["charge"]["epsilon"] for e in charged) <= 1.0
    assert ledger["budget"]["delta"] == 1e-6  # the public default, not a function of n

    again = run("tabular", "synth", data, "-o", out, "--epsilon", 1, "--metadata", meta, "--method", "independent")
    assert again.exit_code != 0 and "overwrite" in again.output
    forced = run("tabular", "synth", data, "-o", out, "--epsilon", 1, "--metadata", meta, "--method", "independent",
                 "--force", "--rows", 50, "--quiet")
    assert forced.exit_code == 0, forced.output
    assert len(pd.read_csv(out)) == 50


def test_round_trip_with_mst_and_dp_row_count(inputs):
    tmp, data, _ = inputs
    small = tmp / "small.csv"
    pd.read_csv(data)[["age", "group"]].to_csv(small, index=False)
    meta = tmp / "partial.yaml"
    meta.write_text("columns:\n  group:\n    type: categorical\n    categories: [a, b, c]\n")
    out = tmp / "mst.csv"
    res = run("tabular", "synth", small, "-o", out, "--epsilon", 2, "--delta", 1e-5, "--metadata", meta,
              "--method", "mst", "--seed", 1, "--quiet")
    assert res.exit_code == 0, res.output
    assert "tabular.domain" in res.output and "tabular.fit.mst" in res.output
    assert run("ledger", "verify", out).exit_code == 0
    synth = pd.read_csv(out)
    assert list(synth.columns) == ["age", "group"]
    assert "UNIQUE_SECRET" not in set(synth["group"].dropna())


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--epsilon", 0], "epsilon"),
        (["--epsilon", -1], "epsilon"),
        (["--epsilon", "nan"], "epsilon"),
        (["--epsilon", "inf"], "epsilon"),
        (["--epsilon", 1, "--delta", 0], "delta"),
        (["--epsilon", 1, "--delta", 1], "delta"),
        (["--epsilon", 1, "--method", "gan"], "unknown method"),
        (["--epsilon", 1, "--rows", 0], "rows"),
    ],
)
def test_bad_flags_are_clear_errors(inputs, extra, needle):
    tmp, data, meta = inputs
    res = run("tabular", "synth", data, "-o", tmp / "o.csv", "--metadata", meta, *extra)
    assert res.exit_code != 0
    assert needle in res.output.lower()
    assert not (tmp / "o.csv").exists()


def test_bad_inputs_are_clear_errors(inputs):
    tmp, data, meta = inputs
    out = tmp / "o.csv"
    res = run("tabular", "synth", tmp / "missing.csv", "-o", out, "--epsilon", 1)
    assert res.exit_code != 0 and "does not exist" in res.output
    empty = tmp / "empty.csv"
    empty.write_text("")
    assert "empty" in run("tabular", "synth", empty, "-o", out, "--epsilon", 1).output
    header = tmp / "header.csv"
    header.write_text("a,b\n")
    # a header without rows is a table like any other: refusing it would depend on the data (its
    # one-row neighbour releases), so it releases noise from the public domain
    one = tmp / "one.csv"
    one.write_text("a,b\n1,2\n")
    for small in (header, one):
        small_out = tmp / f"small-{small.stem}.csv"
        res = run("tabular", "synth", small, "-o", small_out, "--epsilon", 1, "--allow-degenerate")
        assert res.exit_code == 0, res.output
        assert run("ledger", "verify", small_out).exit_code == 0
    broken = tmp / "broken.csv"
    broken.write_text('a,b\n1,2\n3,"4\n5,6,7,8\n')
    res = run("tabular", "synth", broken, "-o", out, "--epsilon", 1)
    assert res.exit_code != 0 and "parse" in res.output
    bad_meta = tmp / "bad_meta.json"
    bad_meta.write_text(json.dumps({"columns": {"nope": {"type": "boolean"}}}))
    res = run("tabular", "synth", data, "-o", out, "--epsilon", 1, "--metadata", bad_meta)
    assert res.exit_code != 0 and "nope" in res.output
    res = run("tabular", "synth", data, "-o", tmp / "o.xlsx", "--epsilon", 1, "--metadata", meta)
    assert res.exit_code != 0 and "format" in res.output
    assert not out.exists()
