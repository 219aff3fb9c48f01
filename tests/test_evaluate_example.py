"""The end-to-end checklist example runs offline and passes (fast method so CI stays quick)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluate_checklist.py"


def test_tabular_checklist_example_end_to_end(tmp_path):
    spec = importlib.util.spec_from_file_location("evaluate_checklist", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "run"
    assert module.main(["--out", str(out), "--method", "independent"]) == 0
    for name in ("synthetic.csv", "synthetic.csv.ledger.json", "synthetic.csv.card.yaml",
                 "synthetic.csv.eval.json", "synthetic.csv.eval.html", "hybrid.csv", "hybrid.csv.card.yaml"):
        assert (out / name).exists(), name
    dp = json.loads((out / "synthetic.csv.eval.json").read_text())
    leaky = json.loads((out / "nonprivate_copy.csv.eval.json").read_text())
    assert dp["privacy_audit"]["epsilon_lb"] <= dp["privacy_claim"]["ledger_epsilon"]
    assert leaky["release_decision"]["decision"] == "reject"
    # a second run refuses to overwrite the release it made
    assert module.cli(["--out", str(out), "--method", "independent"]) == 2
