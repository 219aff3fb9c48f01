"""Issue 8 section 1: column types never come from the values; issue 9: loud, public-only CSV handling.

The regression: a base table, the same plus one row with an empty ``age``, and plus one row with
``abc`` as age must give the same released schema, card ``public_domain`` and output format when
the metadata declares the columns; without metadata the type is released by a charged DP step.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dpsynth.cli import app
from dpsynth.tabular import dp_domain
from dpsynth.tabular.parsing import PARSE_CLASSES, CsvFormatError, parse_classes, read_csv_text, read_header

#: these tests exercise single runs; the source budget (dpsynth budget init) has its own test below
runner = CliRunner(env={"DPSYNTH_SOURCE_BUDGET": "off"})

META = {
    "row_count": 300,
    "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 90, "integer": True, "bins": 8},
        "city": {"type": "categorical", "categories": ["north", "south"]},
    },
}


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def base_rows(n: int = 300) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    return [(str(a), c) for a, c in zip(rng.integers(18, 90, n), rng.choice(["north", "south"], n))]


def write_csv(path, rows):
    path.write_text("age,city\n" + "".join(f"{a},{c}\n" for a, c in rows))
    return path


@pytest.fixture()
def three_tables(tmp_path):
    rows = base_rows()
    return {
        "base": write_csv(tmp_path / "base.csv", rows),
        "empty_age": write_csv(tmp_path / "empty.csv", rows + [("", "north")]),
        "abc_age": write_csv(tmp_path / "abc.csv", rows + [("abc", "south")]),
    }


def test_with_metadata_one_row_changes_nothing_released(tmp_path, three_tables, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    cards, formats = {}, {}
    for name, path in three_tables.items():
        out = tmp_path / f"out_{name}.csv"
        res = run("tabular", "synth", path, "-o", out, "-e", 1, "--metadata", meta, "--method", "independent", "-q")
        assert res.exit_code == 0, res.output
        card = yaml.safe_load((tmp_path / f"out_{name}.csv.card.yaml").read_text())
        cards[name] = json.dumps(card["tabular"]["public_domain"], sort_keys=True)
        text = pd.read_csv(out, dtype=str, keep_default_na=False)
        formats[name] = (list(text.columns), len(text), bool(text["age"].str.fullmatch(r"\d+").all()),
                         set(text["city"]) <= {"north", "south"})
        ledger = json.loads((tmp_path / f"out_{name}.csv.ledger.json").read_text())
        assert [e["operation"] for e in ledger["entries"] if e["kind"] == "charge"] == ["tabular.fit.independent"]
    assert cards["base"] == cards["empty_age"] == cards["abc_age"]
    assert formats["base"] == formats["empty_age"] == formats["abc_age"] == (["age", "city"], 300, True, True)
    domain = json.loads(cards["base"])["columns"]["age"]
    assert domain["type"] == "numerical" and domain["integer"] is True


def test_without_metadata_the_type_is_released_by_a_charged_dp_step(tmp_path, three_tables, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    out = tmp_path / "out.csv"
    res = run("tabular", "synth", three_tables["abc_age"], "-o", out, "-e", 1, "--method", "independent",
              "--allow-degenerate", "-q")
    assert res.exit_code == 0, res.output
    ledger = json.loads((tmp_path / "out.csv.ledger.json").read_text())
    domain = [e for e in ledger["entries"] if e["kind"] == "charge" and e["operation"] == "tabular.domain"][0]
    types = [s for s in domain["stages"] if s["name"] == "types"][0]
    assert types["event"]["type"] == "SelfComposedDpEvent"
    assert domain["parameters"]["types"]["columns"] == ["age", "city"]
    assert run("ledger", "verify", out).exit_code == 0


def test_type_step_histogram_has_sensitivity_one():
    """Same noise draw, neighbouring tables: the noisy class counts differ by one in one class."""
    base = pd.Series([a for a, _ in base_rows()], dtype=object)
    for extra in ("", "abc", "12", "1.5", "2020-01-02", "2020-01-02 10:00", "true"):
        plus = pd.concat([base, pd.Series([extra], dtype=object)], ignore_index=True)
        a = dp_domain.dp_type_counts(base, 5.0, np.random.default_rng(7))
        b = dp_domain.dp_type_counts(plus, 5.0, np.random.default_rng(7))
        diff = b - a
        assert np.isclose(np.abs(diff).sum(), 1.0) and np.isclose(diff.max(), 1.0)


def test_type_decision_is_post_processing_of_the_noisy_counts_only():
    noisy = np.array([3.0, -2.0, 250.0, 1.0, 4.0, 1.0, 40.0])  # missing, boolean, integer, number, date, datetime, text
    d = dp_domain.decide_type(noisy, sigma=10.0)
    assert (d.type, d.integer, d.nullable, d.reliable) == ("numerical", True, False, True)
    assert dp_domain.decide_type(np.array([0, 0, 5, 0, 0, 0, 300.0]), 10.0).type == "categorical"
    dates = dp_domain.decide_type(np.array([80.0, 0, 0, 0, 400, 3, 0]), 10.0)
    assert dates.nullable and dates.type == "datetime" and dates.datetime_format == "%Y-%m-%d"
    assert dp_domain.decide_type(np.array([0, 0, 0, 0, 3, 400.0, 0]), 10.0).datetime_format is None
    assert not dp_domain.decide_type(np.array([0, 0, 3.0, 0, 0, 0, 2.0]), 10.0).reliable


def test_type_step_statistics_match_the_gaussian_guarantee():
    """Empirically: the released type of a column and of its +1-row neighbour are close in law."""
    base = pd.Series(["1"] * 30 + ["x"] * 30, dtype=object)
    plus = pd.concat([base, pd.Series(["abc"])], ignore_index=True)
    rng = np.random.default_rng(3)
    sigma = 4.0
    def share(s):
        return np.mean([dp_domain.decide_type(dp_domain.dp_type_counts(s, sigma, rng), sigma).type == "numerical"
                        for _ in range(3000)])
    p, q = share(base), share(plus)
    assert 0.05 < p < 0.95 and 0.05 < q < 0.95  # the decision is random, not a function of the values
    assert abs(p - q) < 0.15


def test_parse_rules_are_applied_to_each_value_alone():
    values = ["12", " 7 ", "", "NA", "1.5", "1e3", "abc", "2020-01-02", "True", "no", "F", "inf", "3.0",
              "2020-01-02 10:30"]
    whole = parse_classes(pd.Series(values, dtype=object))
    alone = [int(parse_classes(pd.Series([v], dtype=object))[0]) for v in values]
    assert whole.tolist() == alone
    names = [PARSE_CLASSES[i] for i in whole]
    assert names == ["integer", "integer", "missing", "missing", "number", "number", "text", "date",
                     "boolean", "boolean", "text", "text", "number", "datetime"]


def test_csv_is_read_as_text_and_the_delimiter_comes_from_the_header(tmp_path):
    p = tmp_path / "semi.csv"
    p.write_text("a;b\n1;x\n2;y\n")
    df = read_csv_text(p)
    assert list(df.columns) == ["a", "b"] and df["a"].tolist() == ["1", "2"]
    both = tmp_path / "both.csv"
    both.write_text("a;b,c\n1;2,3\n")
    with pytest.raises(CsvFormatError, match="--sep"):
        read_header(both)
    assert read_header(both, sep=";")[0] == ["a", "b,c"]
    dup = tmp_path / "dup.csv"
    dup.write_text("a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(CsvFormatError, match="duplicate.*'a'"):
        read_header(dup)
    one = tmp_path / "tab.csv"
    one.write_text("a\tb\n1\t2\n")
    with pytest.raises(CsvFormatError, match="single column"):
        read_header(one, sep=",")


def test_cli_refuses_duplicates_and_ambiguous_delimiters_before_reading(tmp_path):
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a\n1,2\n3,4\n")
    res = run("tabular", "synth", dup, "-o", tmp_path / "o.csv", "-e", 1)
    assert res.exit_code == 2 and "duplicate" in res.output
    both = tmp_path / "both.csv"
    both.write_text("a;b,c\n1;2,3\n4;5,6\n")
    res = run("tabular", "synth", both, "-o", tmp_path / "o.csv", "-e", 1)
    assert res.exit_code == 2 and "--sep" in res.output
    assert not (tmp_path / "o.csv").exists()


def test_metadata_template_reads_the_header_only(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text('age,city,"date of birth"\nSECRET_VALUE,"unterminated\n\x00\x01garbage,,,,\n')
    res = run("tabular", "metadata-template", p, "-o", tmp_path / "meta.yaml")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "meta.yaml").read_text()
    assert "SECRET_VALUE" not in text and "garbage" not in text
    raw = yaml.safe_load(text)
    assert list(raw["columns"]) == ["age", "city", "date of birth"]
    assert all(v["type"] == "auto" for v in raw["columns"].values())
    again = run("tabular", "metadata-template", p, "-o", tmp_path / "meta.yaml")
    assert again.exit_code == 2 and "overwrite" in again.output


def test_infer_metadata_dp_pass_writes_a_ledger_and_the_file_drives_synth(tmp_path, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(1)
    n = 3000
    pd.DataFrame({"age": rng.integers(18, 90, n), "sex": rng.choice(["F", "M"], n)}).to_csv(tmp_path / "in.csv", index=False)
    meta = tmp_path / "meta.yaml"
    res = run("tabular", "infer-metadata", tmp_path / "in.csv", "-o", meta, "-e", 1, "-q")
    assert res.exit_code == 0, res.output
    ledger = tmp_path / "meta.yaml.ledger.json"
    assert ledger.exists() and (tmp_path / "meta.yaml.card.yaml").exists()
    assert run("ledger", "verify", meta).exit_code == 0
    raw = yaml.safe_load(meta.read_text())
    assert raw["columns"]["age"]["type"] == "numerical" and raw["columns"]["sex"]["categories"] == ["F", "M"]
    assert "row_count" in raw
    out = tmp_path / "out.csv"
    res = run("tabular", "synth", tmp_path / "in.csv", "-o", out, "-e", 1, "--metadata", meta, "--method", "independent", "-q")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out.csv.ledger.json").read_text())
    assert [e["operation"] for e in doc["entries"] if e["kind"] == "charge"] == ["tabular.fit.independent"]


def test_infer_metadata_from_a_public_sample_spends_nothing(tmp_path):
    sample = tmp_path / "public.csv"
    sample.write_text("age,sex,when\n20,F,2020-01-01\n35,M,2021-06-30\n,F,2020-03-03\n")
    res = run("tabular", "infer-metadata", "--public-sample", sample, "-o", tmp_path / "m.yaml")
    assert res.exit_code == 0, res.output
    raw = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert raw["columns"]["age"] == {"type": "numerical", "nullable": True, "lower": 20.0, "upper": 35.0, "bins": 16,
                                     "integer": True}
    assert raw["columns"]["sex"]["categories"] == ["F", "M"] and raw["columns"]["when"]["type"] == "datetime"
    assert not (tmp_path / "m.yaml.ledger.json").exists()


def test_a_public_sample_forced_over_a_dp_metadata_release_leaves_no_stale_ledger_or_card(tmp_path):
    (tmp_path / "in.csv").write_text("age,sex\n" + "".join(f"{20 + i % 50},{'FM'[i % 2]}\n" for i in range(300)))
    meta = tmp_path / "m.yaml"
    assert run("tabular", "infer-metadata", tmp_path / "in.csv", "-o", meta, "-e", 1, "-q").exit_code == 0
    assert (tmp_path / "m.yaml.ledger.json").exists() and (tmp_path / "m.yaml.card.yaml").exists()
    sample = tmp_path / "public.csv"
    sample.write_text("age,sex\n20,F\n35,M\n")
    res = run("tabular", "infer-metadata", "--public-sample", sample, "-o", meta, "--force")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "m.yaml.ledger.json").exists() and not (tmp_path / "m.yaml.card.yaml").exists()


def test_library_with_metadata_gives_the_same_schema_whatever_pandas_inferred():
    """The three tables as plain ``pd.read_csv`` would type them (int64 / float64 / object)."""
    from dpsynth.tabular import synthesize

    rows = base_rows()
    frames = {
        "base": pd.DataFrame({"age": [int(a) for a, _ in rows], "city": [c for _, c in rows]}),
        "empty_age": pd.DataFrame({"age": [float(a) for a, _ in rows] + [np.nan], "city": [c for _, c in rows] + ["north"]}),
        "abc_age": pd.DataFrame({"age": [a for a, _ in rows] + ["abc"], "city": [c for _, c in rows] + ["south"]}),
    }
    assert [str(f["age"].dtype) for f in frames.values()] == ["int64", "float64", "object"]
    out = {k: synthesize(f, epsilon=1.0, metadata=META, method="independent", progress=False) for k, f in frames.items()}
    schemas = {k: json.dumps(r.schema.to_dict(), sort_keys=True) for k, r in out.items()}
    dtypes = {k: tuple(str(t) for t in r.data.dtypes) for k, r in out.items()}
    assert len(set(schemas.values())) == 1 and len(set(dtypes.values())) == 1
    assert dtypes["base"][0] == "int64"
