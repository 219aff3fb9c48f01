"""Scale-out tables without Ray: exact counts through the streaming backend equal the in-memory
ones, the ledger is the same entry for entry, and refusals happen before anything is spent."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.accounting import verify_text
from dpsynth.cli import app
from dpsynth.tabular.backends import BackendError, check_backend, output_arrow_schema
from dpsynth.tabular.encoding import TableEncoder
from dpsynth.tabular.private_table import (
    InMemoryCounts,
    PrivateCounts,
    StreamingCounts,
    TableSource,
    encode_frame,
)
from dpsynth.tabular.schema import resolve_schema
from dpsynth.tabular.synthesize import Synthesizer, synthesize
from tests._scale_data import CLIQUES, METADATA, MST_FAST, comparable_charges, make_table, write_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    df = make_table()
    paths = write_inputs(df, tmp_path_factory.mktemp("scale"))
    memory_df = pd.read_csv(paths["csv"])  # what the in-memory CLI path reads
    encoder = TableEncoder.from_schema(resolve_schema(memory_df, METADATA))
    return paths, memory_df, encoder


def read_in_memory(paths, key: str) -> pd.DataFrame:
    """What the in-memory path reads from the same files (pandas). An empty string is missing in
    CSV (pandas' rule) but a value in Parquet, so each format is compared with its own reading."""
    if key == "parquet_dir":
        return pd.read_parquet(paths[key])
    files = [paths[key]] if key == "csv" else sorted(paths[key].glob("*.csv"))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def test_streaming_counts_equal_in_memory_counts(inputs):
    paths, _, encoder = inputs
    for key in ("csv", "csv_dir", "parquet_dir"):
        memory_df = read_in_memory(paths, key)
        memory = InMemoryCounts(encoder.encode(memory_df), encoder.columns, encoder.sizes)
        assert isinstance(memory, PrivateCounts)
        assert memory.counts(())[0] == len(memory_df) == 1500
        stream = StreamingCounts(TableSource.from_path(paths[key]), encoder, chunk_rows=200)  # many chunks
        stream.prefetch(CLIQUES)
        assert stream.passes == 1
        for clique in CLIQUES:
            np.testing.assert_array_equal(stream.counts(clique), memory.counts(clique), err_msg=f"{key} {clique}")
        assert stream.passes == 1  # everything came from the one prefetch pass
        stream.counts(("age", "plan", "city"))  # not prefetched: one more pass, same answer
        assert stream.passes == 2
        np.testing.assert_array_equal(stream.counts(("age", "plan", "city")), memory.counts(("age", "plan", "city")))


def test_counts_see_missing_and_unicode_values(inputs):
    _, memory_df, encoder = inputs
    memory = InMemoryCounts(encoder.encode(memory_df), encoder.columns, encoder.sizes)
    city = memory.counts(("city",))  # Zürich, 東京, São Paulo, Kraków, other, missing
    assert city.size == 6
    assert city[1] == (memory_df["city"] == "東京").sum()
    assert city[-1] == memory_df["city"].isna().sum() > 0  # "" is missing as in pandas
    assert city[-2] == memory_df["city"].isin(["Ōsaka"]).sum() > 0  # outside the list: other


def test_chunk_encoding_equals_library_encoding(inputs):
    _, memory_df, encoder = inputs
    np.testing.assert_array_equal(encode_frame(encoder, memory_df), encoder.encode(memory_df))


def test_stream_backend_ledger_matches_in_memory_and_verifies(inputs):
    paths, memory_df, _ = inputs
    results = {
        "memory": synthesize(memory_df, 1.0, method="mst", metadata=METADATA, progress=False, rows=50,
                             method_options=MST_FAST),
        "stream": synthesize(paths["parquet_dir"], 1.0, method="mst", metadata=METADATA, progress=False, rows=50,
                             backend="stream", method_options=MST_FAST),
    }
    reference = comparable_charges(results["memory"].ledger)
    assert [c["operation"] for c in reference] == ["tabular.domain", "tabular.fit.mst"]  # DP row count
    for name, res in results.items():
        assert comparable_charges(res.ledger) == reference, name
        report = verify_text(res.ledger.to_json())
        assert report.ok, report.problems
        assert res.ledger.epsilon_spent == pytest.approx(results["memory"].ledger.epsilon_spent, rel=1e-12)
        assert list(res.data.columns) == list(memory_df.columns) and len(res.data) == 50


def test_independent_method_on_counts(inputs):
    paths, _, _ = inputs
    res = synthesize(paths["csv_dir"], 2.0, method="independent", metadata=METADATA, progress=False, rows=30,
                     backend="stream")
    assert res.method == "independent" and len(res.data) == 30
    assert set(res.data["city"].dropna()) <= {"Zürich", "東京", "São Paulo", "Kraków", "other"}


def test_dpsgd_and_incomplete_metadata_are_refused_before_any_charge(inputs):
    paths, _, _ = inputs
    for kwargs, needle in [
        ({"method": "dpsgd_vae", "metadata": METADATA}, "in-process only"),
        ({"method": "mst", "metadata": {"columns": {"city": {"type": "categorical"}}}}, "complete public metadata"),
    ]:
        synth = Synthesizer(epsilon=1.0, progress=False, backend="stream", **kwargs)
        with pytest.raises(BackendError, match=needle):
            synth.fit(paths["parquet_dir"])
        assert synth.ledger is None or not synth.ledger.charges()
    with pytest.raises(BackendError, match="unknown backend"):
        check_backend("spark")


def test_unparseable_numbers_are_missing_as_in_memory(tmp_path):
    (tmp_path / "t.csv").write_text("age,plan\n30,pro\nunknown,pro\n41.5,équipe\n,x\n1e2,pro\n", encoding="utf-8")
    meta = {"columns": {"age": {"type": "numerical", "lower": 0, "upper": 100},
                        "plan": {"type": "categorical", "categories": ["pro", "équipe"]}}}
    memory_df = pd.read_csv(tmp_path / "t.csv")
    encoder = TableEncoder.from_schema(resolve_schema(memory_df, meta))
    memory = InMemoryCounts(encoder.encode(memory_df), encoder.columns, encoder.sizes)
    stream = StreamingCounts(TableSource.from_path(tmp_path / "t.csv"), encoder)
    for clique in [("age",), ("plan",), ("age", "plan")]:
        np.testing.assert_array_equal(stream.counts(clique), memory.counts(clique))
    assert memory.counts(("age",))[-1] == 2  # "unknown" and "" are missing


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'dpsynth\[ray\]'"):
        check_backend("ray")


def test_output_schema_is_public_and_fixed(inputs):
    _, memory_df, encoder = inputs
    schema = output_arrow_schema(encoder.schema)
    assert [f.name for f in schema] == list(memory_df.columns)
    assert str(schema.field("city").type) == "string" and str(schema.field("uid").type) == "int64"


def test_cli_stream_backend_writes_streamed_release(inputs, tmp_path):
    paths, memory_df, _ = inputs
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(METADATA), encoding="utf-8")
    out = tmp_path / "out.parquet"
    runner = CliRunner()
    res = runner.invoke(app, ["tabular", "synth", str(paths["parquet_dir"]), "-o", str(out), "--epsilon", "1",
                              "--method", "independent", "--metadata", str(meta), "--rows", "2500",
                              "--backend", "stream", "--quiet", "--seed", "3"])
    assert res.exit_code == 0, res.output
    data = pd.read_parquet(out)
    assert len(data) == 2500 and list(data.columns) == list(memory_df.columns)
    assert data["uid"].tolist() == list(range(1, 2501))  # fresh ids continue across chunks
    assert verify_text(out.with_name(out.name + ".ledger.json").read_text()).ok
    assert out.with_name(out.name + ".card.yaml").exists()
    bad = runner.invoke(app, ["tabular", "synth", str(paths["parquet_dir"]), "-o", str(tmp_path / "x.parquet"),
                              "--epsilon", "1", "--metadata", str(meta), "--backend", "stream", "--method", "dpsgd_vae"])
    assert bad.exit_code == 2 and "in-process only" in bad.output
    nometa = runner.invoke(app, ["tabular", "synth", str(paths["parquet_dir"]), "-o", str(tmp_path / "y.parquet"),
                                 "--epsilon", "1", "--backend", "stream"])
    assert nometa.exit_code == 2 and "--metadata" in nometa.output
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "y.parquet").exists()


def test_mst_and_independent_read_the_data_in_one_pass(inputs):
    paths, _, _ = inputs
    for method, options in (("mst", MST_FAST), ("independent", {})):
        synth = Synthesizer(epsilon=1.0, method=method, metadata=METADATA, progress=False, backend="stream",
                            method_options=options).fit(paths["parquet_dir"])
        assert synth.counts_.passes == 1, method  # the prefetched workload answered every query


def test_aim_workload_holds_its_small_three_way_marginals():
    from dpsynth.tabular.backends import workload
    from dpsynth.tabular.methods import get_method

    cols, sizes = ("a", "b", "c", "d"), (10, 10, 10, 200)
    cliques = workload("aim", get_method("aim", max_cells=5_000), cols, sizes)
    assert ("a", "b", "c") in cliques and ("a", "b", "d") not in cliques  # 1000 cells vs 20000
    assert {("a",), ("a", "d")} <= set(cliques)


def test_streamed_output_crosses_chunks(inputs, tmp_path):
    from dpsynth.tabular.backends import write_streamed

    paths, _, _ = inputs
    synth = Synthesizer(epsilon=2.0, method="independent", metadata=METADATA, progress=False, backend="stream",
                        seed=1).fit(paths["csv_dir"])
    out = write_streamed(synth, tmp_path / "o.parquet", rows=2_345, chunk_rows=1_000).data
    data = pd.read_parquet(out)
    assert len(data) == 2_345 and data["uid"].tolist() == list(range(1, 2_346))
    assert set(data["plan"].dropna()) <= {"бесплатно", "pro", "équipe"}
    assert verify_text(out.with_name(out.name + ".ledger.json").read_text()).ok


def test_cli_stream_backend_charges_the_directory_source_budget_first(inputs, tmp_path, monkeypatch):
    from dpsynth.accounting import PrivacyBudget
    from dpsynth.accounting.source_budget import find_source_budget, init_source_budget
    from dpsynth.tabular.synthesize import PRIVACY_UNIT

    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET", raising=False)
    paths, _, _ = inputs
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(METADATA), encoding="utf-8")
    args = ["tabular", "synth", str(paths["parquet_dir"]), "--epsilon", "1", "--method", "independent",
            "--metadata", str(meta), "--backend", "stream", "--quiet", "--rows", "20"]
    refused = CliRunner().invoke(app, args + ["-o", str(tmp_path / "a.parquet")])
    assert refused.exit_code == 2 and "no source budget" in refused.output  # nothing read, nothing written
    assert not (tmp_path / "a.parquet").exists()
    init_source_budget(paths["parquet_dir"], PrivacyBudget(1.5, 1e-5), privacy_unit=PRIVACY_UNIT)
    ok = CliRunner().invoke(app, args + ["-o", str(tmp_path / "b.parquet")])
    assert ok.exit_code == 0, ok.output
    budget = find_source_budget(paths["parquet_dir"]).load()
    assert [c["parameters"]["release"] for c in budget.charges()] == [str(tmp_path / "b.parquet")]
    again = CliRunner().invoke(app, args + ["-o", str(tmp_path / "c.parquet")])  # 1 + 1 > 1.5: refused
    assert again.exit_code == 2 and not (tmp_path / "c.parquet").exists()
