"""Public schema, reversible encoding (clipping, rare categories) and the DP domain mechanisms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from dpsynth.tabular import dp_domain
from dpsynth.tabular.encoding import ColumnEncoder, TableEncoder, numeric_edges
from dpsynth.tabular.schema import (
    ColumnSpec,
    MetadataError,
    UnknownColumnError,
    load_metadata,
    resolve_schema,
)


def table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(5e4, 1e4, n),
            "city": rng.choice(["a", "b", "c"], n),
            "member": rng.random(n) < 0.5,
            "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        }
    )


META = {
    "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 90, "integer": True, "bins": 8},
        "income": {"type": "numerical", "min": 0, "max": 100000},
        "city": {"type": "categorical", "categories": ["a", "b", "c"]},
        "member": {"type": "boolean"},
        "joined": {"type": "datetime", "lower": "2020-01-01", "upper": "2023-01-01"},
    },
    "row_count": 200,
}


# ------------------------------------------------------------------------------------ metadata
def test_metadata_from_json_yaml_and_dict_agree(tmp_path):
    import yaml

    (tmp_path / "m.json").write_text(json.dumps(META))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(META))
    df = table()
    a = resolve_schema(df, tmp_path / "m.json")
    b = resolve_schema(df, tmp_path / "m.yaml")
    c = resolve_schema(df, META)
    assert a == b == c
    assert a["income"].lower == 0.0 and a["income"].upper == 100000.0
    assert a.row_count == 200


def test_unknown_metadata_column_is_a_clear_error():
    meta = {"columns": {"nope": {"type": "categorical", "categories": ["x"]}}}
    with pytest.raises(UnknownColumnError, match="nope"):
        resolve_schema(table(), meta)


@pytest.mark.parametrize(
    "bad",
    [
        {"columns": {"age": {"type": "weird"}}},
        {"columns": {"age": {"type": "numerical", "lower": 5}}},
        {"columns": {"age": {"type": "numerical", "lower": 5, "upper": 1}}},
        {"columns": {"age": {"type": "numerical", "lower": 0, "upper": float("inf")}}},
        {"columns": {"city": {"type": "categorical", "categories": []}}},
        {"columns": {"city": {"type": "categorical", "categories": ["a", "a"]}}},
        {"columns": {"age": {"type": "numerical", "bins": 0, "lower": 0, "upper": 1}}},
        {"row_count": -3, "columns": {}},
        {"no_columns": {}},
    ],
)
def test_malformed_metadata_is_refused(bad):
    with pytest.raises(MetadataError):
        resolve_schema(table(), bad)


def test_missing_metadata_file_and_unparsable_file(tmp_path):
    with pytest.raises(MetadataError, match="does not exist"):
        load_metadata(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MetadataError, match="cannot parse"):
        load_metadata(tmp_path / "bad.json")


def test_sdv_metadata_is_accepted():
    from sdv.metadata import Metadata

    df = table()
    md = Metadata.load_from_dict(
        {"tables": {"t": {"columns": {"city": {"sdtype": "categorical"}, "age": {"sdtype": "numerical"}}}}}
    )
    schema = resolve_schema(df, md)
    assert schema["city"].type == "categorical" and schema["city"].categories is None
    assert schema["age"].type == "numerical" and schema["age"].needs_dp_bounds


def test_identifier_column_is_not_refused_before_the_charge_and_id_columns_get_fresh_ids():
    df = table()
    df["email"] = [f"user{i}@example.com" for i in range(len(df))]
    schema = resolve_schema(df, META)  # no data-dependent refusal: the column's type is left to DP
    assert schema["email"].type == "auto" and schema["email"].needs_dp_type
    meta = json.loads(json.dumps(META))
    meta["columns"]["email"] = {"type": "id"}
    schema = resolve_schema(df, meta)
    enc = TableEncoder.from_schema(schema)
    assert "email" not in enc.columns
    out = enc.decode(enc.encode(df), np.random.default_rng(0))
    assert list(out.columns) == list(df.columns)
    assert not set(out["email"].astype(str)) & set(df["email"])  # fresh ids, nothing copied


def test_undeclared_columns_typed_dtypes_are_vouched_and_text_columns_are_auto():
    schema = resolve_schema(table(), None)
    types = {c.name: c.type for c in schema.columns}
    assert types == {"age": "numerical", "income": "numerical", "city": "auto", "member": "boolean", "joined": "datetime"}
    assert schema["age"].integer and not schema["income"].integer
    assert not schema["age"].declared and schema.row_count is None
    # a CSV read as text: every undeclared column is "auto", whatever its values
    text = table().astype(str)
    assert {c.type for c in resolve_schema(text, None).columns} == {"auto"}


def test_declared_columns_default_to_not_nullable():
    schema = resolve_schema(table(), META)
    assert not any(c.nullable for c in schema.columns)
    meta = json.loads(json.dumps(META))
    meta["columns"]["city"]["nullable"] = True
    assert resolve_schema(table(), meta)["city"].nullable


# ------------------------------------------------------------------------------------ encoding
def test_round_trip_keeps_types_and_values_in_bounds():
    df = table()
    schema = resolve_schema(df, META)
    enc = TableEncoder.from_schema(schema)
    codes = enc.encode(df)
    assert codes.shape == (len(df), 5)
    assert (codes >= 0).all() and (codes < np.array(enc.sizes)).all()
    out = enc.decode(codes, np.random.default_rng(0))
    assert list(out.columns) == list(df.columns)
    assert set(out["city"]) <= {"a", "b", "c"}
    assert out["age"].between(18, 90).all() and str(out["age"].dtype) == "int64"  # not nullable: no NA dtype
    assert out["income"].between(0, 100000).all()
    assert out["joined"].between(pd.Timestamp("2020-01-01"), pd.Timestamp("2023-01-01")).all()
    assert str(out["member"].dtype) == "boolean" and not out.isna().any().any()
    # Re-encoding the decoded table gives the same codes (decoding stays inside each bin).
    assert np.array_equal(enc.encode(out), codes)


def test_integer_columns_with_few_values_get_one_code_per_value():
    spec = ColumnSpec("k", "numerical", lower=1, upper=5, integer=True, bins=16, nullable=False)
    enc = ColumnEncoder.from_spec(spec)
    assert enc.size == 5 + 1  # one code per value, plus the missing/unfit code every column has
    codes = enc.encode(pd.Series([1, 2, 3, 4, 5]))
    assert codes.tolist() == [0, 1, 2, 3, 4]
    assert enc.decode(codes, np.random.default_rng(0)).tolist() == [1, 2, 3, 4, 5]
    assert len(numeric_edges(ColumnSpec("k", "numerical", lower=0, upper=100, bins=4))) == 5


def test_values_outside_public_bounds_are_clipped_never_revealed():
    spec = ColumnSpec("x", "numerical", lower=0.0, upper=10.0, bins=5)
    enc = ColumnEncoder.from_spec(spec)
    secret = pd.Series([-1e9, 3.0, 1e9, 7.5])
    codes = enc.encode(secret)
    assert codes.tolist() == [0, 1, 4, 3]
    out = enc.decode(np.repeat(codes, 1000), np.random.default_rng(0))
    assert out.min() >= 0.0 and out.max() <= 10.0


def test_category_outside_public_list_never_appears():
    spec = ColumnSpec("c", "categorical", categories=("a", "b"))
    enc = ColumnEncoder.from_spec(spec)
    codes = enc.encode(pd.Series(["a", "b", "SECRET", None]))
    assert codes.tolist() == [0, 1, 2, 2]  # out-of-list -> missing/unfit code
    out = enc.decode(np.arange(enc.size).repeat(10), np.random.default_rng(0))
    assert "SECRET" not in set(out.dropna())
    other = ColumnEncoder.from_spec(ColumnSpec("c", "categorical", categories=("a", "b"), other_label="other"))
    decoded = other.decode(other.encode(pd.Series(["a", "SECRET"])), np.random.default_rng(0))
    assert decoded.tolist() == ["a", "other"]


def test_encoding_never_refuses_a_value_and_non_nullable_columns_output_no_missing():
    enc = ColumnEncoder.from_spec(ColumnSpec("c", "categorical", categories=("a",), nullable=False))
    assert enc.encode(pd.Series(["a", "b", None, ""])).tolist() == [0, 1, 1, 1]  # unfit -> the missing code
    num = ColumnEncoder.from_spec(ColumnSpec("x", "numerical", lower=1, upper=2, bins=2, nullable=False))
    assert num.encode(pd.Series(["1.2", "abc", None, "", "inf"])).tolist() == [0, 2, 2, 2, 2]
    out = num.decode(np.array([0, 2, 2, 1]), np.random.default_rng(0))
    assert not out.isna().any()  # imputed from the column's other synthetic values
    nullable = ColumnEncoder.from_spec(ColumnSpec("x", "numerical", lower=1, upper=2, bins=2, nullable=True))
    assert nullable.decode(np.array([0, 2]), np.random.default_rng(0)).isna().tolist() == [False, True]


def test_zero_is_a_point_code_so_zero_inflated_columns_stay_zero_inflated():
    spec = ColumnSpec("gain", "numerical", lower=0, upper=10000, bins=4, integer=True)
    enc = ColumnEncoder.from_spec(spec)
    assert enc.points == (0.0, 10000.0) and enc.size == 4 + 2 + 1  # bins, points 0 and the upper bound, missing
    codes = enc.encode(pd.Series([0, 0, 0, 5000, 1, 99999]))
    assert codes.tolist() == [4, 4, 4, 2, 0, 5]  # 99999 is clipped onto the bound's own code
    out = enc.decode(codes.repeat(100), np.random.default_rng(0))
    assert (out == 0).mean() == pytest.approx(0.5) and (out == 10000).mean() == pytest.approx(1 / 6)
    floats = ColumnEncoder.from_spec(ColumnSpec("x", "numerical", lower=-1.0, upper=1.0, bins=4))
    assert floats.points == (0.0,)
    # a column with one code per integer already has its own code for 0
    assert ColumnEncoder.from_spec(ColumnSpec("k", "numerical", lower=0, upper=3, integer=True)).points == ()


def test_numeric_categories_match_csv_text():
    enc = ColumnEncoder.from_spec(ColumnSpec("c", "categorical", categories=(1, 2, "x")))
    assert enc.encode(pd.Series([1.0, "2", "x"])).tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------------ DP domain
def test_dp_categories_never_keep_a_value_seen_once():
    values = ["common"] * 500 + ["rare_once"]
    rng = np.random.default_rng(0)
    for _ in range(200):  # even with a threshold below 1 the singleton is suppressed
        kept = dp_domain.dp_categories(values, sigma=0.5, threshold=0.5, rng=rng)
        assert "rare_once" not in kept and "common" in kept


def test_dp_category_threshold_gives_the_stated_survival_probability():
    sigma, target = 3.0, 0.1
    tau = dp_domain.threshold_for(sigma, target, min_count=2)
    assert tau == pytest.approx(2 + sigma * norm.isf(target))
    rng = np.random.default_rng(1)
    survived = np.mean([bool(dp_domain.dp_categories(["v", "v"], sigma, tau, rng)) for _ in range(6000)])
    assert abs(survived - target) < 0.015


def test_dp_row_count_noise_scale():
    rng = np.random.default_rng(2)
    draws = np.array([dp_domain.dp_row_count(1000, 10.0, rng) for _ in range(5000)])
    assert abs(draws.mean() - 1000) < 0.6 and abs(draws.std() - 10.0) < 0.4
    assert dp_domain.dp_row_count(0, 1.0, rng) >= 2


def test_dp_bounds_cover_the_bulk_and_ignore_a_lone_outlier():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(20, 60, 20000), [1e9]])
    lo, hi = dp_domain.dp_bounds(values, sigma=20.0, rng=rng)
    assert lo <= 20 and hi >= 60
    assert lo >= 10 and hi <= 100  # adjacent public grid edges, not the outlier
    grid = dp_domain.numeric_candidates()
    assert lo in grid and hi in grid


def test_dp_bounds_for_datetimes_use_year_edges():
    rng = np.random.default_rng(4)
    stamps = pd.Series(pd.Timestamp("2015-03-01") + pd.to_timedelta(rng.integers(0, 700, 5000), unit="D"))
    from dpsynth.tabular.encoding import _to_seconds

    lo, hi = dp_domain.dp_bounds(_to_seconds(stamps), 5.0, rng, candidates=dp_domain.datetime_candidates())
    assert pd.Timestamp(lo, unit="s") == pd.Timestamp("2015-01-01")
    assert pd.Timestamp(hi, unit="s") == pd.Timestamp("2018-01-01")


# ------------------------------------------------------------------------------------ quality
def test_average_tvd_is_zero_for_identical_and_one_for_disjoint_tables():
    from dpsynth.tabular.quality import average_tvd

    a = np.array([[0, 0], [1, 1], [0, 1], [1, 0]])
    assert average_tvd(a, a, (2, 2), 1) == 0.0
    assert average_tvd(a, a[::-1], (2, 2), 2) == 0.0  # row order does not matter
    b = np.array([[2, 2]] * 4)
    assert average_tvd(a, b, (3, 3), 1) == pytest.approx(1.0)
    c = np.array([[0, 0], [0, 0], [1, 1], [1, 1]])  # same 1-way, different 2-way
    assert average_tvd(a, c, (2, 2), 1) == 0.0
    assert average_tvd(a, c, (2, 2), 2) == pytest.approx(0.5)
    assert np.isnan(average_tvd(a, c, (2, 2), 3))
