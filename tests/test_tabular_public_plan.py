"""Bad public input is refused before any charge (one plan step for the CLI and the library), the
output of infer-metadata is reserved through the run, and the in-memory fingerprint is taken after
the charge (review T5, T6, T7)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.accounting import BudgetExceededError, Ledger, PrivacyBudget
from dpsynth.accounting.source_budget import find_source_budget
from dpsynth.cli import app
from dpsynth.tabular import _accounting as acc
from dpsynth.tabular.methods.workload import WorkloadError
from dpsynth.tabular.synthesize import Synthesizer

META = {"columns": {"a": {"type": "categorical", "categories": ["x", "y"]},
                    "b": {"type": "numerical", "lower": 0, "upper": 10},
                    "u": {"type": "id"}}}


@pytest.fixture()
def strict(tmp_path, monkeypatch):
    """A private home and the source budget enforced; ``d.csv`` with a source budget of epsilon 10."""
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    runner = CliRunner(env={"DPSYNTH_SOURCE_BUDGET": ""})
    rng = np.random.default_rng(0)
    data = tmp_path / "d.csv"
    pd.DataFrame({"a": rng.choice(["x", "y"], 60), "b": rng.integers(0, 10, 60), "u": range(60)}).to_csv(data, index=False)
    (tmp_path / "meta.json").write_text(json.dumps(META))
    (tmp_path / "meta.yaml").write_text("columns:\n  a: {type: categorical, categories: [x, y]}\n")
    (tmp_path / "meta_bad.yaml").write_text("columns:\n  zz: {type: categorical, categories: [x, y]}\n")
    for name, work in (("w_pair.json", [["a", "b"]]), ("w_empty.json", []), ("w_repeat.json", [["a", "a"]]),
                       ("w_unknown.json", [["a", "nope"]])):
        (tmp_path / name).write_text(json.dumps(work))
    res = runner.invoke(app, ["budget", "init", str(data), "--epsilon", "10", "--delta", "1e-5"])
    assert res.exit_code == 0, res.output
    return runner, data


def source_charges(data) -> list:
    return find_source_budget(data).load().charges()


SYNTH = ["tabular", "synth", "{data}", "-o", "{tmp}/out.csv", "--epsilon", "1", "-q"]
BAD_PUBLIC_INPUTS = [
    (["--method", "mst", "--workload", "{tmp}/w_pair.json"], "takes no workload"),
    (["--method", "aim", "--workload", "{tmp}/w_empty.json"], "workload is empty"),
    (["--method", "aim", "--workload", "{tmp}/w_repeat.json"], "repeats a column"),
    (["--method", "aim", "--workload", "{tmp}/w_unknown.json"], "nope"),
    (["--method", "aim", "--target", "nope"], "nope"),
    (["--method", "independent", "--metadata", "{tmp}/meta.json", "--target", "u"], "not one of the modelled"),
    (["--method", "dpsgd_vae", "--target", "a"], "bad options for method 'dpsgd_vae'"),
    (["--metadata", "{tmp}/meta_bad.yaml"], "not in the table: zz"),
    (["--backend", "stream", "--method", "dpsgd_vae", "--metadata", "{tmp}/meta.json"], "in-process only"),
    (["--backend", "stream", "--method", "mst", "--metadata", "{tmp}/meta.yaml"], "complete public metadata"),
    (["--backend", "stream", "--metadata", "{tmp}/meta_bad.yaml"], "not in the table: zz"),
]


@pytest.mark.parametrize("extra, needle", BAD_PUBLIC_INPUTS)
def test_cli_synth_refuses_bad_public_input_before_the_source_budget_charge(strict, tmp_path, extra, needle):
    runner, data = strict
    args = [a.format(data=data, tmp=tmp_path) for a in SYNTH + extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and needle in res.output, res.output
    assert "Charged" not in res.output and source_charges(data) == []  # the source budget is unchanged
    assert not (tmp_path / "out.csv").exists()


def test_cli_infer_metadata_parses_the_metadata_before_the_charge(strict, tmp_path):
    runner, data = strict
    res = runner.invoke(app, ["tabular", "infer-metadata", str(data), "-o", str(tmp_path / "m.yaml"), "-e", "1",
                              "--metadata", str(tmp_path / "meta_bad.yaml"), "-q"])
    assert res.exit_code == 2 and "not in the table: zz" in res.output
    assert source_charges(data) == [] and not (tmp_path / "m.yaml").exists()
    ok = runner.invoke(app, ["tabular", "infer-metadata", str(data), "-o", str(tmp_path / "m.yaml"), "-e", "1",
                             "--metadata", str(tmp_path / "meta.yaml"), "-q"])
    assert ok.exit_code == 0, ok.output
    assert len(source_charges(data)) == 1  # the good run is charged: the check above could fail


def test_cli_infer_metadata_never_overwrites_its_metadata_input(strict, tmp_path):
    runner, data = strict
    meta = tmp_path / "meta.yaml"
    before = meta.read_text()
    res = runner.invoke(app, ["tabular", "infer-metadata", str(data), "-o", str(meta), "-e", "1",
                              "--metadata", str(meta), "--force", "-q"])
    assert res.exit_code == 2 and "never overwrites an input" in res.output
    assert meta.read_text() == before and source_charges(data) == []


def test_cli_infer_metadata_holds_its_output_reservation(strict, tmp_path):
    from tests._reservation import held_by_another_run

    runner, data = strict
    out = tmp_path / "m.yaml"
    with held_by_another_run(out, force=True):  # as a concurrent run would
        for extra in ([], ["--force"]):
            res = runner.invoke(app, ["tabular", "infer-metadata", str(data), "-o", str(out), "-e", "1", "-q", *extra])
            assert res.exit_code == 2 and "being written by another dpsynth run" in res.output, res.output
    assert source_charges(data) == [] and not out.exists()  # refused before the charge


def test_library_refuses_a_bad_workload_before_the_domain_stage_charge():
    df = pd.DataFrame({"a": ["x", "y"] * 20, "b": ["1", "2"] * 20})  # no metadata: a DP domain stage comes first
    for options in ({"workload": [["a", "nope"]]}, {"workload": []}, {"target": "nope"}):
        ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="t")
        with pytest.raises(WorkloadError):
            Synthesizer(epsilon=1.0, method="aim", method_options=options, ledger=ledger, progress=False).fit(df)
        assert ledger.charges() == [], options


def test_plan_is_the_public_step_fit_uses():
    header = pd.DataFrame({n: pd.Series([], dtype=object) for n in ("a", "b", "u")})
    synth = Synthesizer(epsilon=1.0, method="auto", metadata=META, progress=False)
    plan = synth.plan(header)  # column names only: nothing to read
    assert plan.method_name == "aim" and [c.name for c in plan.schema.columns] == ["a", "b", "u"]
    assert [s.name for s in plan.domain_plan.stages] == ["row_count"]  # the metadata has no row count
    assert plan.domain_budget[0] == pytest.approx(0.1) and plan.method_budget[0] == pytest.approx(0.9)
    full = Synthesizer(epsilon=1.0, method="auto", metadata=dict(META, row_count=60), progress=False).plan(header)
    assert not full.domain_plan.needed and full.method_budget == (1.0, 1e-6)


def test_unhashable_cell_is_charged_and_refused_like_a_clean_frame():
    clean = pd.DataFrame({"a": ["x", "y", "z"], "b": ["1", "2", "3"]})
    odd = pd.DataFrame({"a": ["x", "y", ["z"]], "b": ["1", "2", "3"]})
    messages = []
    for df in (clean, odd):  # a short budget: the same refusal, nothing charged, nothing hashed
        ledger = Ledger.create(PrivacyBudget(0.5, 1e-6), privacy_unit="row", source_name="t")
        with pytest.raises(BudgetExceededError) as info:
            Synthesizer(epsilon=1.0, method="independent", ledger=ledger, progress=False).fit(df)
        messages.append(str(info.value))
        assert ledger.charges() == []
    assert messages[0] == messages[1]
    # enough budget: the odd frame is charged first, as the clean one is (its failure comes after the charge)
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="t")
    with pytest.raises(TypeError):
        Synthesizer(epsilon=1.0, method="independent", ledger=ledger, progress=False).fit(odd)
    assert len(ledger.charges()) == 1


def test_in_memory_fingerprint_is_taken_inside_the_first_charged_stage(monkeypatch):
    import importlib

    synth_module = importlib.import_module("dpsynth.tabular.synthesize")  # the package exports a function of that name
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="t")
    seen = []
    real = acc.fingerprint_dataframe

    def spy(df, *args, **kwargs):
        seen.append(len(ledger.charges()))
        return real(df, *args, **kwargs)

    monkeypatch.setattr(synth_module.acc, "fingerprint_dataframe", spy)
    df = pd.DataFrame({"a": ["x", "y"] * 10, "b": ["1", "2"] * 10})
    Synthesizer(epsilon=1.0, method="independent", ledger=ledger, progress=False).fit(df)
    assert seen == [1]  # once, after the first charge; both completions carry that value
    prints = ledger.source_fingerprints()
    assert len(prints) == 2 and len(set(prints)) == 1


def test_an_unreachable_ray_address_is_refused_before_the_charge(tmp_path):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray connection exists: the address would not be consulted")
    from dpsynth.ray_support import RayConnectError

    data = tmp_path / "d.csv"
    pd.DataFrame({"a": ["x", "y"] * 5, "b": range(10), "u": range(10)}).to_csv(data, index=False)
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="d.csv")
    synth = Synthesizer(epsilon=1.0, method="independent", metadata=META, backend="ray", ledger=ledger,
                        ray_address="127.0.0.1:1", progress=False)
    with pytest.raises(RayConnectError, match="nothing was read or spent"):
        synth.fit(data)
    assert ledger.charges() == [] and not ray.is_initialized()
