"""The whole evaluation checklist, end to end, on a small public table (runs offline, ~1-3 min).

Data: scikit-learn's bundled Breast Cancer Wisconsin table (569 rows, shipped inside the wheel,
no download). We pretend it is sensitive:

1. split it at random into a "private" half (the generator's input) and a real holdout half
   (each row a fair coin flip, so the membership audit's epsilon bound is valid);
2. declare public metadata (feature ranges as published in the dataset's documentation, never
   computed from the private rows);
3. synthesize a DP table with ``dpsynth.tabular`` at epsilon = 1 and save the release
   (data + ledger + card);
4. evaluate it: marginals (1/2/3-way TVD), per-column distances, sdmetrics quality, TSTR vs TRTR,
   the real+synthetic ablation, exact-copy scan and the membership audit (DCR + density ratio),
   then write ``*.eval.json``, the offline HTML report and the card's ``evals`` /
   ``release_decision``;
5. run the same audit on a deliberately non-private "generator" (epsilon = inf: it copies the
   private rows) released under the same epsilon claim, to show the audit catching it;
6. build a hybrid training set with ``mix`` at a stated synthetic ratio.

Usage::

    python examples/evaluate_checklist.py [--out DIR] [--epsilon 1.0] [--method mst] [--force]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Feature ranges from the dataset's published documentation (sklearn DESCR), i.e. public metadata,
#: widened slightly; the 'diagnosis' categories are the documented class names.
PUBLIC_RANGES = {
    "worst radius": (7.0, 37.0),
    "worst texture": (12.0, 50.0),
    "worst perimeter": (50.0, 252.0),
    "worst area": (185.0, 4300.0),
    "worst smoothness": (0.07, 0.23),
    "worst compactness": (0.02, 1.06),
    "worst concavity": (0.0, 1.26),
    "worst concave points": (0.0, 0.3),
}


def load_public_table() -> pd.DataFrame:
    """The bundled Breast Cancer table, restricted to the 'worst' features and the diagnosis."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame[list(PUBLIC_RANGES)].copy()
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return frame


def public_metadata() -> dict:
    # The documentation also states "Missing Attribute Values: None" (public), hence nullable: false.
    columns = {name: {"type": "numerical", "lower": lo, "upper": hi, "bins": 16, "nullable": False}
               for name, (lo, hi) in PUBLIC_RANGES.items()}
    columns["diagnosis"] = {"type": "categorical", "categories": ["benign", "malignant"], "nullable": False}
    return {"columns": columns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("evaluate_checklist_out"))
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--method", default="mst", help="dpsynth.tabular method (mst, aim, independent)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an earlier run's outputs")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    from dpsynth.evaluate import evaluate_files, mix_files
    from dpsynth.release import write_release
    from dpsynth.tabular import synthesize
    from dpsynth.card import build_card

    args.out.mkdir(parents=True, exist_ok=True)
    table = load_public_table()
    rng = np.random.default_rng(args.seed)
    member = rng.random(len(table)) < 0.5  # independent fair coin per row: valid audit design
    private, holdout = table[member].reset_index(drop=True), table[~member].reset_index(drop=True)
    private_path, holdout_path = args.out / "private.csv", args.out / "holdout.csv"
    private.to_csv(private_path, index=False)
    holdout.to_csv(holdout_path, index=False)
    print(f"[1] split {len(table)} rows: {len(private)} private, {len(holdout)} real holdout")

    print(f"[2-3] synthesizing with dpsynth.tabular ({args.method}, epsilon={args.epsilon}) ...")
    result = synthesize(private, epsilon=args.epsilon, delta=1e-6, method=args.method,
                        metadata=public_metadata(), rows=len(private), seed=args.seed, progress=True)
    synth_path = args.out / "synthetic.csv"
    result.save(synth_path, force=args.force)
    print(f"      wrote {synth_path} (+ ledger, card); ledger epsilon = {result.ledger.epsilon_spent:.4f}")

    print("[4] evaluating the DP release against the real holdout ...")
    evaluation, outputs = evaluate_files(synth_path, holdout_path, private_path, target="diagnosis",
                                         force=args.force, seed=args.seed, progress=True)
    _print_summary("DP release", evaluation.report)
    print(f"      report: {outputs.json}, {outputs.html}; card updated: {outputs.card}")

    print("[5] the same checks on a non-private generator (copies the private rows, epsilon = inf) ...")
    leaky_path = args.out / "nonprivate_copy.csv"
    ledger = result.ledger  # the same (false) epsilon claim as the DP run
    write_release(leaky_path, lambda tmp: private.to_csv(tmp, index=False), ledger,
                  build_card(ledger, generator_model={"family": "copy (NOT private)"}), force=args.force)
    leaky, _ = evaluate_files(leaky_path, holdout_path, private_path, target="diagnosis",
                              force=args.force, seed=args.seed, run_sdmetrics=False)
    _print_summary("non-private copy", leaky.report)

    print("[6] hybrid training set: all real rows plus 30% synthetic ...")
    hybrid = mix_files(private_path, synth_path, 0.3, args.out / "hybrid.csv", force=args.force, seed=args.seed)
    print(f"      wrote {hybrid['data']} with synthetic_ratio={hybrid['synthetic_ratio']:.3f} "
          f"(card: {hybrid['card']})")

    ok = (evaluation.report["privacy_audit"]["epsilon_lb"] <= result.ledger.epsilon_spent
          and leaky.decision == "reject")
    print("\nchecklist:", "PASSED" if ok else "FAILED",
          "- the DP release's audit stays below its ledger epsilon and the non-private copy is rejected")
    return 0 if ok else 1


def _print_summary(name: str, report: dict) -> None:
    audit = report.get("privacy_audit", {})
    tstr = report.get("utility", {}).get("tstr", {})
    marg = report.get("fidelity", {}).get("marginals", {})
    print(f"      {name}: decision={report['release_decision']['decision']}  "
          f"TSTR={tstr.get('tstr', float('nan')):.3f} TRTR={tstr.get('trtr', float('nan')):.3f}  "
          f"3-way TVD={marg.get('3way', {}).get('mean', float('nan')):.3f} "
          f"(floor {marg.get('3way', {}).get('floor_mean', float('nan')):.3f})  "
          f"audit AUC={audit.get('max_auc', float('nan')):.3f} eps_lb={audit.get('epsilon_lb', float('nan')):.3f}")
    for reason in report["release_decision"]["reasons"]:
        print(f"        - {reason}")


def cli(argv: list[str] | None = None) -> int:
    """``main`` with a clear message instead of a traceback when outputs already exist."""
    try:
        return main(argv)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
