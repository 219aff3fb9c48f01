"""`dpsynth budget` with the synth commands: after `budget init --epsilon 2`, two runs at epsilon 1
pass and the third is refused with nothing read; without a budget a run is refused unless
--no-source-budget."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app

runner = CliRunner()


@pytest.fixture()
def owner(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET", raising=False)
    return tmp_path


def _table(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "private.csv"
    src.write_text("a,b\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(80)))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"row_count": 80, "columns": {
        "a": {"type": "categorical", "categories": ["0", "1", "2"]},
        "b": {"type": "categorical", "categories": ["0", "1"]}}}))
    return src, meta


def _synth(src: Path, meta: Path, out: Path, *extra: str):
    return runner.invoke(app, ["tabular", "synth", str(src), "-o", str(out), "--epsilon", "1", "--delta", "1e-7",
                               "--metadata", str(meta), "--method", "independent", "-q", *extra])


def test_two_runs_fit_the_third_is_refused_before_reading(owner, monkeypatch):
    src, meta = _table(owner)
    assert runner.invoke(app, ["budget", "init", str(src), "--epsilon", "2", "--delta", "1e-6"]).exit_code == 0
    for name in ("a.csv", "b.csv"):
        result = _synth(src, meta, owner / name)
        assert result.exit_code == 0, result.output
    reads = []
    real_read_csv = pd.read_csv

    def spy(*args, **kwargs):
        reads.append(args)
        return real_read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    result = _synth(src, meta, owner / "c.csv")
    assert result.exit_code == 2 and "source budget" in result.output
    assert reads == [] and not (owner / "c.csv").exists()
    shown = json.loads(runner.invoke(app, ["budget", "show", "--json"]).output)
    assert len(shown) == 1 and shown[0]["epsilon_spent"] == pytest.approx(2.0)
    assert [r["status"] for r in shown[0]["releases"]] == ["completed", "completed"]


def test_without_a_budget_the_run_is_refused_unless_opted_out(owner):
    src, meta = _table(owner)
    result = _synth(src, meta, owner / "x.csv")
    assert result.exit_code == 2 and "dpsynth budget init" in result.output
    assert _synth(src, meta, owner / "x.csv", "--no-source-budget").exit_code == 0


def test_explicit_ledger_file(owner):
    src, meta = _table(owner)
    from dpsynth.accounting import LedgerFile, PrivacyBudget

    ledger = owner / "team.ledger.json"
    LedgerFile.create(ledger, PrivacyBudget(1.5, 1e-6), privacy_unit="row", source_name="team")
    assert _synth(src, meta, owner / "a.csv", "--ledger", str(ledger)).exit_code == 0
    assert _synth(src, meta, owner / "b.csv", "--ledger", str(ledger)).exit_code == 2


def test_a_run_that_fails_after_its_charge_keeps_it_as_failed(owner, monkeypatch):
    src, meta = _table(owner)
    # the fit fails after the source budget's charge (deterministically: a failure that depends on
    # the DP noise, such as a release refused as degenerate, would make this test flaky)
    from dpsynth.errors import DpsynthError
    from dpsynth.tabular.methods.independent import IndependentMethod

    def failing_fit(self, *args, **kwargs):
        raise DpsynthError("simulated failure inside the fit, after the charge")

    monkeypatch.setattr(IndependentMethod, "fit", failing_fit)
    assert runner.invoke(app, ["budget", "init", str(src), "--epsilon", "2", "--delta", "1e-6"]).exit_code == 0
    result = runner.invoke(app, ["tabular", "synth", str(src), "-o", str(owner / "a.csv"), "--epsilon", "1",
                                 "--delta", "1e-7", "--metadata", str(meta), "--method", "independent", "-q"])
    assert result.exit_code == 2 and "simulated failure" in result.output and not (owner / "a.csv").exists()
    shown = json.loads(runner.invoke(app, ["budget", "show", str(src), "--json"]).output)
    assert [r["status"] for r in shown[0]["releases"]] == ["failed"]
    assert shown[0]["epsilon_spent"] == pytest.approx(1.0)  # a budget spent on a failed run stays spent
