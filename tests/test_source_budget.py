"""One budget per source across releases: `dpsynth budget init/show` and the charge every synth run makes."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dpsynth.accounting import BudgetExceededError, PrivacyBudget
from dpsynth.accounting.source_budget import (
    CallBudgetPlan,
    SourceBudgetError,
    init_source_budget,
    source_ledger_path,
)
from dpsynth.cli import app

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DPSYNTH_SOURCE_BUDGET", raising=False)
    return tmp_path / "home"


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "private.csv"
    src.write_text("a,b\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(60)))
    return src


def test_source_id_is_keyed_and_depends_on_the_path_only(home, tmp_path):
    src = _source(tmp_path)
    before = source_ledger_path(src)
    src.write_text(src.read_text() + "2,1\n")  # one more record: same source, same budget
    assert source_ledger_path(src) == before
    assert str(src.name) not in before.name and "private" not in before.name
    os.environ["DPSYNTH_SOURCE_KEY"] = "cd" * 32
    try:
        assert source_ledger_path(src) != before  # keyed by the owner's source key
    finally:
        del os.environ["DPSYNTH_SOURCE_KEY"]


def test_budget_is_never_reset(home, tmp_path):
    src = _source(tmp_path)
    init_source_budget(src, PrivacyBudget(2.0, 1e-6), privacy_unit="row")
    with pytest.raises(SourceBudgetError, match="never reset"):
        init_source_budget(src, PrivacyBudget(20.0, 1e-6), privacy_unit="row")
    result = runner.invoke(app, ["budget", "init", str(src), "--epsilon", "9", "--delta", "1e-6"])
    assert result.exit_code == 2


def _spend_once(path: str, home: str, queue) -> None:
    os.environ["DPSYNTH_HOME"] = home
    from dpsynth.accounting.ledger_file import LedgerFile

    try:
        with LedgerFile(path).spend(CallBudgetPlan(1.0, 1e-7, release="r"), operation="release"):
            pass
        queue.put("won")
    except BudgetExceededError:
        queue.put("refused")


def test_two_processes_race_for_the_last_unit(home, tmp_path):
    src = _source(tmp_path)
    handle = init_source_budget(src, PrivacyBudget(1.5, 1e-6), privacy_unit="row")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_spend_once, args=(str(handle.path), str(home), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = sorted(queue.get(timeout=5) for _ in procs)
    assert outcomes == ["refused", "won"]
    assert handle.load().epsilon_spent == pytest.approx(1.0)
