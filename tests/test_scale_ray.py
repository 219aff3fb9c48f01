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
from dpsynth.tabular.synthesize import synthesize  # noqa: E402
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
    data = pd.read_csv(out)
    assert len(data) > 100 and list(data.columns) == list(METADATA["columns"])  # the DP row count
    assert verify_text(out.with_name(out.name + ".ledger.json").read_text()).ok
    assert ray.is_initialized()
