"""Hive-partitioned directory input (``DIR/year=2020/region=.../part-0.parquet``): the folder names
are columns, declared in the public metadata like any other; exact counts equal the in-memory ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app
from dpsynth.tabular.backends import BackendError, source_schema
from dpsynth.tabular.encoding import TableEncoder
from dpsynth.tabular.private_table import InMemoryCounts, StreamingCounts, TableSource, TableSourceError
from dpsynth.tabular.schema import resolve_schema
from tests._scale_data import HIVE_CLIQUES, HIVE_METADATA, METADATA, make_table, write_hive


@pytest.fixture(scope="module", params=["parquet", "csv"])
def hive(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"hive_{request.param}")
    memory_df = write_hive(make_table(), root, request.param)
    if request.param == "csv":  # an empty string is missing in CSV (pandas' rule), a value in Parquet
        memory_df = memory_df.replace({"": None})
    return root, memory_df


def test_folder_names_are_text_columns_after_the_header(hive):
    root, _ = hive
    source = TableSource.from_path(root)
    assert source.partition_keys == ("year", "region")
    assert source.column_names()[-2:] == ("year", "region")
    values = {source.partition_of(i)["region"] for i in range(len(source.paths))}
    assert values == {"north", "São Paulo", "東京"}  # URI-decoded
    assert {source.partition_of(i)["year"] for i in range(len(source.paths))} == {"2020", "2021", None}


def test_hive_counts_equal_in_memory_counts(hive):
    root, memory_df = hive
    encoder = TableEncoder.from_schema(resolve_schema(memory_df, HIVE_METADATA))
    memory = InMemoryCounts(encoder.encode(memory_df), encoder.columns, encoder.sizes)
    stream = StreamingCounts(TableSource.from_path(root), encoder, chunk_rows=128)
    stream.prefetch(HIVE_CLIQUES)
    for clique in HIVE_CLIQUES:
        np.testing.assert_array_equal(stream.counts(clique), memory.counts(clique), err_msg=str(clique))
    year = memory.counts(("year",))
    assert year[-1] == memory_df["year"].isna().sum() > 0  # __HIVE_DEFAULT_PARTITION__ is missing


def test_partition_columns_need_public_metadata_like_any_other(hive):
    root, _ = hive
    with pytest.raises(BackendError, match="no type for column\\(s\\) year, region"):
        source_schema(TableSource.from_path(root), METADATA)


def test_parts_under_different_partition_columns_are_refused_without_naming_values(tmp_path):
    df = make_table(40)
    (tmp_path / "year=2020").mkdir()
    (tmp_path / "month=secret-value").mkdir()
    df.to_parquet(tmp_path / "year=2020" / "a.parquet")
    df.to_parquet(tmp_path / "month=secret-value" / "b.parquet")
    with pytest.raises(TableSourceError, match="different key=value folder names") as info:
        TableSource.from_path(tmp_path)
    assert "secret-value" not in str(info.value) and "2020" not in str(info.value)


def test_a_partition_column_that_is_also_in_the_files_is_refused(tmp_path):
    (tmp_path / "city=x").mkdir()
    make_table(40).to_parquet(tmp_path / "city=x" / "a.parquet")
    with pytest.raises(TableSourceError, match="also columns in the files"):
        TableSource.from_path(tmp_path).column_names()


def test_cli_stream_on_a_hive_directory_releases_the_partition_columns(hive, tmp_path):
    from dpsynth.tabular.output_parts import read_partitioned

    root, _ = hive
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(HIVE_METADATA), encoding="utf-8")
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(app, ["tabular", "synth", str(root), "-o", str(out), "--epsilon", "2", "--method",
                                   "independent", "--metadata", str(meta), "--backend", "stream", "--partitioned",
                                   "--rows", "300", "--quiet", "--no-source-budget"])
    assert res.exit_code == 0, res.output
    data = read_partitioned(out)
    assert len(data) == 300 and list(data.columns)[-2:] == ["year", "region"]
    assert set(data["region"].dropna()) <= {"São Paulo", "東京", "north"}
    assert pd.to_numeric(data["year"].dropna()).between(2015, 2025).all()
    assert CliRunner().invoke(app, ["ledger", "verify", str(out)]).exit_code == 0
