"""The Ray Data backend on a local 2-CPU cluster (one per module): exact counts equal the
in-memory ones, and a release has the in-memory ledger, entry for entry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dpsynth[ray]'); the Ray backend tests need it")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'dpsynth[ray]')")

from typer.testing import CliRunner  # noqa: E402

from dpsynth.accounting import verify_text  # noqa: E402
from dpsynth.cli import app  # noqa: E402
from dpsynth.tabular.encoding import TableEncoder  # noqa: E402
from dpsynth.tabular.private_table import InMemoryCounts, RayCounts, TableSource  # noqa: E402
from dpsynth.tabular.schema import resolve_schema  # noqa: E402
from dpsynth.accounting import Ledger  # noqa: E402
from dpsynth.tabular.output_parts import read_partitioned, write_partitioned  # noqa: E402
from dpsynth.tabular.synthesize import Synthesizer, synthesize  # noqa: E402
from tests._scale_data import CLIQUES, METADATA, MST_FAST, comparable_charges, make_table, write_inputs  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    paths = write_inputs(make_table(), tmp_path_factory.mktemp("scale_ray"))
    return paths


def test_ray_counts_equal_in_memory_counts(inputs):
    for key, memory_df in [("parquet_dir", pd.read_parquet(inputs["parquet_dir"])),
                           ("csv_dir", pd.concat([pd.read_csv(f) for f in sorted(inputs["csv_dir"].glob("*.csv"))],
                                                 ignore_index=True))]:
        encoder = TableEncoder.from_schema(resolve_schema(memory_df, METADATA))
        memory = InMemoryCounts(encoder.encode(memory_df), encoder.columns, encoder.sizes)
        counts = RayCounts(TableSource.from_path(inputs[key]), encoder, chunk_rows=256)
        counts.prefetch(CLIQUES)
        assert counts.passes == 1
        for clique in CLIQUES:
            np.testing.assert_array_equal(counts.counts(clique), memory.counts(clique), err_msg=f"{key} {clique}")


def test_ray_backend_ledger_matches_in_memory_and_verifies(inputs, tmp_path):
    memory_df = pd.read_parquet(inputs["parquet_dir"])
    memory = synthesize(memory_df, 1.0, method="mst", metadata=METADATA, progress=False, rows=40, method_options=MST_FAST)
    on_ray = synthesize(inputs["parquet_dir"], 1.0, method="mst", metadata=METADATA, progress=False, rows=40,
                        backend="ray", method_options=MST_FAST)
    assert comparable_charges(on_ray.ledger) == comparable_charges(memory.ledger)
    assert verify_text(on_ray.ledger.to_json()).ok
    assert on_ray.ledger.epsilon_spent == pytest.approx(memory.ledger.epsilon_spent, rel=1e-12)
    assert len(on_ray.data) == 40 and list(on_ray.data.columns) == list(memory_df.columns)


def test_cli_ray_backend_keeps_a_cluster_it_did_not_start(inputs, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(METADATA), encoding="utf-8")
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(app, ["tabular", "synth", str(inputs["csv_dir"]), "-o", str(out), "--epsilon", "1",
                                   "--method", "independent", "--metadata", str(meta), "--backend", "ray", "--quiet"])
    assert res.exit_code == 0, res.output
    assert out.is_dir()  # --backend ray always writes a directory of parts (sampled on Ray)
    data = read_partitioned(out)
    assert len(data) > 100 and list(data.columns) == list(METADATA["columns"])  # the DP row count
    assert verify_text(out.with_name(out.name + ".ledger.json").read_text(), data_path=out).ok
    assert ray.is_initialized()


def test_cli_ray_samples_parts_in_parallel_and_the_rows_are_the_sum_of_the_parts(inputs, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(METADATA), encoding="utf-8")
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(app, ["tabular", "synth", str(inputs["parquet_dir"]), "-o", str(out), "--epsilon", "1",
                                   "--method", "independent", "--metadata", str(meta), "--backend", "ray",
                                   "--rows", "2500", "--part-rows", "1000", "--quiet", "--no-source-budget"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    data = read_partitioned(out)
    assert len(data) == 2500 and data["uid"].tolist() == list(range(1, 2501))
    ledger = Ledger.load(out.with_name(out.name + ".ledger.json"))
    assert [p["rows"] for p in ledger.last_release()["manifest"]["parts"]] == [1000, 1000, 500]
    sampled = [e for e in ledger.entries if e["kind"] == "postprocessing"][-1]["parameters"]
    assert sampled["sampled_on"] == "ray" and sampled["parts"] == 3
    verified = CliRunner().invoke(app, ["ledger", "verify", str(out)])
    assert verified.exit_code == 0, verified.output


@pytest.fixture(scope="module")
def fitted_on_ray(inputs):
    return Synthesizer(epsilon=2.0, method="independent", metadata=METADATA, progress=False, backend="ray",
                       seed=11).fit(inputs["parquet_dir"])


def test_ray_parts_are_reproducible_with_a_seed_and_fresh_without(fitted_on_ray, tmp_path):
    def manifest(name, seed):
        fitted_on_ray.seed = seed
        paths = write_partitioned(fitted_on_ray, tmp_path / name, rows=600, part_rows=200)
        return [p["sha256"] for p in Ledger.load(paths.ledger).last_release()["manifest"]["parts"]]

    try:
        assert manifest("a.parquet", 11) == manifest("b.parquet", 11)  # SeedSequence(seed, part): same parts
        fresh = manifest("c.parquet", None), manifest("d.parquet", None)  # OS entropy in every task
    finally:
        fitted_on_ray.seed = 11
    assert fresh[0] != fresh[1] and len(set(fresh[0])) == 3


def _failing_sample_part(*args, **kwargs):
    raise RuntimeError("sampling task failed (test)")


def test_a_failed_sampling_task_releases_nothing(fitted_on_ray, tmp_path, monkeypatch):
    import dpsynth.tabular.output_parts as op

    monkeypatch.setattr(op, "sample_part", _failing_sample_part)
    with pytest.raises(op.SamplingWorkerFailed, match="nothing was released"):
        write_partitioned(fitted_on_ray, tmp_path / "out.parquet", rows=300, part_rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.parquet.lock"]  # no parts, temp dir, ledger or card


def test_ray_counts_on_a_hive_directory_equal_memory_and_stream_counts(tmp_path):
    from dpsynth.tabular.private_table import StreamingCounts
    from tests._scale_data import HIVE_CLIQUES, HIVE_METADATA, write_hive

    memory_df = write_hive(make_table(), tmp_path)
    encoder = TableEncoder.from_schema(resolve_schema(memory_df, HIVE_METADATA))
    memory = InMemoryCounts(encoder.encode(memory_df), encoder.columns, encoder.sizes)
    stream = StreamingCounts(TableSource.from_path(tmp_path), encoder, chunk_rows=128)
    on_ray = RayCounts(TableSource.from_path(tmp_path), encoder, chunk_rows=128)
    on_ray.prefetch(HIVE_CLIQUES)
    for clique in HIVE_CLIQUES:
        np.testing.assert_array_equal(on_ray.counts(clique), memory.counts(clique), err_msg=str(clique))
        np.testing.assert_array_equal(stream.counts(clique), memory.counts(clique), err_msg=str(clique))


def test_ray_sampling_shows_progress(fitted_on_ray, tmp_path, capsys):
    fitted_on_ray.progress = True
    try:
        write_partitioned(fitted_on_ray, tmp_path / "out.parquet", rows=200, part_rows=100)
    finally:
        fitted_on_ray.progress = False
    err = capsys.readouterr().err
    assert "sampling parts on Ray" in err and "/2 " in err, err[-500:]  # a bar over the 2 parts


def test_ray_malformed_row_fails_after_the_charge_and_is_never_quoted(tmp_path):
    """A worker's reader error (which quotes the row) never reaches the driver's message or traceback."""
    import traceback

    from dpsynth.accounting import PrivacyBudget

    secret = "ALICE-SECRET-SSN-123-45-6789"
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "part-0.csv").write_text("age,city\n31,Paris\n52,Nice\n", encoding="utf-8")
    (folder / "part-1.csv").write_text(f"age,city\n45,Lyon,{secret}\n", encoding="utf-8")
    meta = {"row_count": 3, "columns": {"age": {"type": "numerical", "lower": 0, "upper": 100},
                                        "city": {"type": "categorical", "categories": ["Paris", "Lyon", "Nice"]}}}
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="parts")
    synth = Synthesizer(epsilon=1.0, method="independent", metadata=meta, backend="ray", ledger=ledger, progress=False)
    with pytest.raises(Exception) as info:
        synth.fit(folder)
    shown = str(info.value) + "".join(traceback.format_exception(type(info.value), info.value, info.value.__traceback__))
    assert "does not match the header" in shown and secret not in shown and "ALICE" not in shown
    assert len(ledger.charges()) == 1  # read inside the charged stage; the charge stays
