"""Evaluation of one synthetic **table** against real tables: fidelity, utility, copies, audit.

Reads: the synthetic table (a DP release), the real holdout and, when given, the private training
table -- every section is therefore marked ``reads_private_data: true`` with its real
``sources`` (see :mod:`dpsynth.evaluate.sections`). Not differentially private: the numbers must not
be published nor steer generation without a ledger entry. The membership audit assumes the
private/holdout split was random and made before generation (:mod:`dpsynth.evaluate.audit`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from dpsynth.evaluate import audit as audit_mod
from dpsynth.evaluate import contamination as contam
from dpsynth.evaluate import tabular_metrics as tab
from dpsynth.evaluate.errors import EvaluationInputError
from dpsynth.evaluate.sections import sample_rows, section

__all__ = ["evaluate_table"]


def evaluate_table(
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    private: pd.DataFrame | None,
    target: str | None,
    benchmark: pd.DataFrame | None,
    ablation_ratio: float | None,
    delta: float,
    audit_size: int,
    run_sdmetrics: bool,
    seed: int,
    step: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table sections of the report and the marginal plots' data; ``step`` reports progress."""
    columns = tab.check_same_columns(holdout, synthetic)
    synthetic = synthetic[columns]
    if private is not None:
        tab.check_same_columns(private, synthetic)
        private = private[columns]
    if target is not None and target not in columns:
        raise EvaluationInputError(f"target column {target!r} not found (columns: {columns})")
    rng = np.random.default_rng(seed)
    real_sources = ["real_holdout"]
    report: dict[str, Any] = {"kind": "table",
                              "dataset": {"synthetic_rows": len(synthetic), "columns": columns}}

    marginals = tab.marginal_tvd(holdout, synthetic, seed=seed)
    per_marginal = marginals.pop("per_marginal")
    fidelity = section(True, real_sources, marginals=marginals,
                        columns=tab.column_distances(holdout, synthetic),
                        worst_2way=sorted(per_marginal.get("2way", {}).items(), key=lambda kv: -kv[1])[:5])
    if run_sdmetrics:
        fidelity["sdmetrics_quality"] = tab.sdmetrics_quality(holdout, synthetic)
    report["fidelity"] = fidelity
    step("fidelity")

    utility: dict[str, Any] = {}
    if target is not None:
        utility["tstr"] = tab.tstr_trtr(synthetic, holdout, target, private, seed)
        if private is not None:
            ratio = 0.5 if ablation_ratio is None else ablation_ratio
            utility["ablation"] = tab.augmentation_ablation(private, synthetic, holdout, target, ratio, seed)
    report["utility"] = section(True, real_sources + (["private"] if private is not None else []), **utility)
    step("utility")

    contamination: dict[str, Any] = {"exact_overlap_holdout": contam.exact_row_overlap(synthetic, holdout)}
    sources = list(real_sources)
    if private is not None:
        contamination["exact_overlap_private"] = contam.exact_row_overlap(synthetic, private)
        sources.append("private")
    if benchmark is not None:
        contamination["benchmark_exact"] = contam.exact_row_overlap(synthetic, benchmark[columns])
        sources.append("benchmark")
    report["contamination"] = section(True, sources, **contamination)
    step("contamination")

    if private is not None:
        n_ref = len(holdout) // 2 if len(holdout) >= 40 else 0
        holdout_perm = holdout.iloc[rng.permutation(len(holdout))]
        reference = holdout_perm.iloc[:n_ref] if n_ref else None
        non_member_pool = holdout_perm.iloc[n_ref:]
        n = min(audit_size, len(private), len(non_member_pool))
        members = sample_rows(private, n, rng)
        non_members = sample_rows(non_member_pool, n, rng)
        audit = audit_mod.tabular_membership_audit(synthetic, members, non_members, delta,
                                                   reference=reference, seed=seed)
        report["privacy_audit"] = section(True, ["private", "real_holdout"], **audit)
    step("privacy_audit")
    plots = {"marginals": tab.marginal_histograms(holdout, synthetic)}
    return report, plots
