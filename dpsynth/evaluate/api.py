"""``evaluate(...)``: the whole evaluation checklist for one synthetic table or text corpus.

What reads what (and may therefore be published):

* ``reads_private_data: false`` -- computed from the synthetic data only (self-BLEU, distinct-n):
  post-processing of a DP release, publishable.
* ``reads_private_data: true`` -- computed from real records (the private training data *or* the
  real holdout, which is real personal data too): **not DP, must not be published**, and must not
  feed back into generation without a ledger entry. The report, the JSON and the card mark every
  section with this flag and list the real ``sources`` it read.

The privacy audit additionally assumes that membership (private vs holdout, or canary planted
vs not) was decided at random before generation; see :mod:`dpsynth.evaluate.audit`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from dpsynth.evaluate import audit as audit_mod
from dpsynth.evaluate import contamination as contam
from dpsynth.evaluate import tabular_metrics as tab
from dpsynth.evaluate import text_metrics as txt
from dpsynth.evaluate.decision import DecisionThresholds, decide

DEFAULT_AUDIT_SIZE = 500
DEFAULT_DELTA_FOR_AUDIT = 1e-5
MAX_EMBED = 1000
NOTICE = ("Sections with reads_private_data: true were computed from real records (private training "
          "data or the real holdout) without differential privacy. Do not publish them and do not "
          "use them to steer generation without a ledger entry.")


@dataclass
class EvaluationResult:
    """The evaluation report (JSON-ready dict) and the data behind the report's plots."""

    report: dict[str, Any]
    plots: dict[str, Any] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        """``ship``, ``regenerate`` or ``reject``."""
        return self.report["release_decision"]["decision"]

    def to_json(self) -> str:
        """The report as indented JSON (non-finite numbers become null)."""
        return json.dumps(_json_safe(self.report), indent=2, sort_keys=False)

    def card_evals(self) -> dict[str, Any]:
        """The compact ``evals`` block for the dataset card (see :func:`card_evals`)."""
        return card_evals(self.report)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _section(reads_private: bool, sources: Sequence[str], **values: Any) -> dict[str, Any]:
    return {**values, "reads_private_data": reads_private, "sources": list(sources)}


def _ledger_numbers(ledger: Any, epsilon: float | None, delta: float | None) -> tuple[float | None, float]:
    if ledger is not None:
        epsilon = float(ledger.epsilon_spent) if epsilon is None else epsilon
        delta = float(ledger.delta_spent) if delta is None else delta
    if epsilon is not None and (math.isnan(epsilon) or epsilon < 0):
        raise ValueError(f"ledger epsilon must be >= 0 (or inf for a non-private run), got {epsilon}")
    return epsilon, (delta if delta is not None and delta > 0 else DEFAULT_DELTA_FOR_AUDIT)


def _sample_rows(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))]


def _sample_list(items: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    if len(items) <= n:
        return list(items)
    return [items[int(i)] for i in np.sort(rng.choice(len(items), size=n, replace=False))]


# --------------------------------------------------------------------------- tables


def _evaluate_table(
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
    columns = tab.check_same_columns(holdout, synthetic)
    synthetic = synthetic[columns]
    if private is not None:
        tab.check_same_columns(private, synthetic)
        private = private[columns]
    if target is not None and target not in columns:
        raise ValueError(f"target column {target!r} not found (columns: {columns})")
    rng = np.random.default_rng(seed)
    real_sources = ["real_holdout"]
    report: dict[str, Any] = {"kind": "table",
                              "dataset": {"synthetic_rows": len(synthetic), "columns": columns}}

    marginals = tab.marginal_tvd(holdout, synthetic, seed=seed)
    per_marginal = marginals.pop("per_marginal")
    fidelity = _section(True, real_sources, marginals=marginals,
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
    report["utility"] = _section(True, real_sources + (["private"] if private is not None else []), **utility)
    step("utility")

    contamination: dict[str, Any] = {"exact_overlap_holdout": contam.exact_row_overlap(synthetic, holdout)}
    sources = list(real_sources)
    if private is not None:
        contamination["exact_overlap_private"] = contam.exact_row_overlap(synthetic, private)
        sources.append("private")
    if benchmark is not None:
        contamination["benchmark_exact"] = contam.exact_row_overlap(synthetic, benchmark[columns])
        sources.append("benchmark")
    report["contamination"] = _section(True, sources, **contamination)
    step("contamination")

    if private is not None:
        n_ref = len(holdout) // 2 if len(holdout) >= 40 else 0
        holdout_perm = holdout.iloc[rng.permutation(len(holdout))]
        reference = holdout_perm.iloc[:n_ref] if n_ref else None
        non_member_pool = holdout_perm.iloc[n_ref:]
        n = min(audit_size, len(private), len(non_member_pool))
        members = _sample_rows(private, n, rng)
        non_members = _sample_rows(non_member_pool, n, rng)
        audit = audit_mod.tabular_membership_audit(synthetic, members, non_members, delta,
                                                   reference=reference, seed=seed)
        report["privacy_audit"] = _section(True, ["private", "real_holdout"], **audit)
    step("privacy_audit")
    plots = {"marginals": tab.marginal_histograms(holdout, synthetic)}
    return report, plots


# --------------------------------------------------------------------------- texts


def _evaluate_text(
    synthetic: Sequence[str],
    holdout: Sequence[str],
    private: Sequence[str] | None,
    synthetic_labels: Sequence[Any] | None,
    holdout_labels: Sequence[Any] | None,
    private_labels: Sequence[Any] | None,
    canaries: Sequence[contam.Canary] | None,
    benchmark: Sequence[str] | None,
    delta: float,
    audit_size: int,
    embedder: Callable[[Sequence[str]], np.ndarray] | None,
    embedder_name: str,
    seed: int,
    step: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    if len(synthetic) == 0 or len(holdout) == 0:
        raise ValueError("the synthetic and holdout corpora must be non-empty")
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"kind": "text", "dataset": {"synthetic_texts": len(synthetic)}}
    diversity = {"self_bleu": txt.self_bleu(synthetic, seed=seed) if len(synthetic) > 1 else None,
                 "distinct_1": txt.distinct_n(synthetic, 1), "distinct_2": txt.distinct_n(synthetic, 2)}
    report["diversity"] = _section(False, [], **diversity)
    step("diversity")

    embed = embedder or txt.hashing_embedder()
    syn_sample = _sample_list(synthetic, MAX_EMBED, rng)
    hold_sample = _sample_list(holdout, MAX_EMBED, rng)
    syn_emb, hold_emb = embed(syn_sample), embed(hold_sample)
    shift: dict[str, Any] = {"embedding": embedder_name,
                             "embedding_coverage": txt.embedding_coverage(hold_emb, syn_emb)
                             if len(hold_emb) > 1 else None,
                             **{k: v for k, v in txt.mauve_score(hold_emb, syn_emb, seed=seed).items()
                                if k in ("mauve", "mauve_distance")}}
    step("embeddings")
    reference = private if private is not None else holdout
    for n in (2, 4):
        try:
            shift[f"novelty_{n}gram"] = txt.ngram_novelty(synthetic, reference, n=n)
        except ValueError:
            shift[f"novelty_{n}gram"] = None
    shift["novelty_reference"] = "private" if private is not None else "real_holdout"
    report["distribution_shift"] = _section(True, ["real_holdout"] + (["private"] if private is not None else []),
                                            **shift)

    utility: dict[str, Any] = {}
    if synthetic_labels is not None and holdout_labels is not None:
        tstr = txt.text_classifier_tstr(synthetic, synthetic_labels, holdout, holdout_labels)
        entry: dict[str, Any] = {"metric": "accuracy", "tstr": tstr["accuracy"], "tstr_secondary": tstr}
        if private is not None and private_labels is not None:
            trtr = txt.text_classifier_tstr(private, private_labels, holdout, holdout_labels)
            entry.update(trtr=trtr["accuracy"], trtr_secondary=trtr,
                         ratio=tstr["accuracy"] / trtr["accuracy"] if trtr["accuracy"] > 0 else None)
        utility["tstr"] = entry
    report["utility"] = _section(True, ["real_holdout"] + (["private"] if private is not None else []), **utility)
    step("utility")

    contamination: dict[str, Any] = {}
    sources: list[str] = []
    if canaries:
        contamination["canaries"] = contam.scan_for_canaries(synthetic, canaries)
        sources.append("canaries")
    if private is not None:
        contamination["exact_overlap_private"] = contam.exact_overlap(synthetic, private)
        contamination["near_duplicates_private"] = contam.near_duplicates(synthetic, private)
        sources.append("private")
    if benchmark is not None:
        contamination["benchmark_exact"] = contam.exact_overlap(synthetic, benchmark)
        contamination["benchmark_near"] = contam.near_duplicates(synthetic, benchmark)
        sources.append("benchmark")
    report["contamination"] = _section(bool(sources), sources, **contamination)
    step("contamination")

    if canaries and any(c.member for c in canaries) and any(not c.member for c in canaries):
        audit = audit_mod.text_canary_audit(synthetic, canaries, delta, seed=seed)
        report["privacy_audit"] = _section(True, ["canaries"], **audit)
    elif private is not None:
        n = min(audit_size, len(private), len(holdout))
        audit = audit_mod.text_record_audit(synthetic, _sample_list(private, n, rng),
                                            _sample_list(holdout, n, rng), delta, seed=seed)
        report["privacy_audit"] = _section(True, ["private", "real_holdout"], **audit)

    step("privacy_audit")
    n_plot = min(300, len(syn_emb), len(hold_emb))
    hold_2d, syn_2d = txt.project_2d(hold_emb[:n_plot], syn_emb[:n_plot])
    plots = {"embedding_2d": {"real": hold_2d.tolist(), "synthetic": syn_2d.tolist(),
                              "coverage": shift["embedding_coverage"]}}
    return report, plots


# --------------------------------------------------------------------------- entry point


def evaluate(
    synthetic: pd.DataFrame | Sequence[str],
    real_holdout: pd.DataFrame | Sequence[str],
    private: pd.DataFrame | Sequence[str] | None = None,
    *,
    target: str | None = None,
    synthetic_labels: Sequence[Any] | None = None,
    holdout_labels: Sequence[Any] | None = None,
    private_labels: Sequence[Any] | None = None,
    ledger: Any = None,
    ledger_epsilon: float | None = None,
    ledger_delta: float | None = None,
    canaries: Sequence[contam.Canary] | None = None,
    benchmark: pd.DataFrame | Sequence[str] | None = None,
    ablation_ratio: float | None = None,
    thresholds: DecisionThresholds | None = None,
    embedder: Callable[[Sequence[str]], np.ndarray] | None = None,
    embedder_name: str | None = None,
    audit_size: int = DEFAULT_AUDIT_SIZE,
    run_sdmetrics: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate a synthetic table (DataFrame) or text corpus (list of str) against real data.

    ``real_holdout`` is real data *not* used for generation (split before synthesis);
    ``private`` is the generator's real input (enables TRTR, the ablation, copy checks and the
    membership audit). ``ledger`` (a :class:`dpsynth.accounting.Ledger`) or ``ledger_epsilon`` /
    ``ledger_delta`` give the privacy claim the audit is checked against; ``ledger_epsilon=inf``
    describes a deliberately non-private run. For tables, ``target`` names the column for TSTR;
    for texts, ``*_labels`` enable the downstream classifier. ``canaries`` (from
    :func:`dpsynth.evaluate.contamination.make_canaries`, planted in the private input) drive the
    text audit and the canary scan. Returns an :class:`EvaluationResult` whose ``report`` has a
    ``release_decision`` from :func:`dpsynth.evaluate.decision.decide`.
    """
    from tqdm.auto import tqdm

    if audit_size < 2:
        raise ValueError("audit_size must be >= 2")
    epsilon, delta = _ledger_numbers(ledger, ledger_epsilon, ledger_delta)
    bar = tqdm(total=4 if isinstance(synthetic, pd.DataFrame) else 5, desc="dpsynth evaluate", unit="step", disable=not progress)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    if isinstance(synthetic, pd.DataFrame):
        if not isinstance(real_holdout, pd.DataFrame) or (private is not None and not isinstance(private, pd.DataFrame)):
            raise TypeError("a synthetic table must be compared with real tables")
        report, plots = _evaluate_table(synthetic, real_holdout, private, target,
                                        benchmark if isinstance(benchmark, pd.DataFrame) else None,
                                        ablation_ratio, delta, audit_size, run_sdmetrics, seed, step)
    else:
        if isinstance(synthetic, str) or isinstance(real_holdout, (str, pd.DataFrame)):
            raise TypeError("a synthetic corpus must be a list of texts compared with a list of real texts")
        name = embedder_name or ("custom" if embedder is not None else "char-ngram-hashing")
        report, plots = _evaluate_text(list(synthetic), list(real_holdout),
                                       list(private) if private is not None else None,
                                       synthetic_labels, holdout_labels, private_labels, canaries,
                                       list(benchmark) if benchmark is not None else None,
                                       delta, audit_size, embedder, name, seed, step)
    bar.close()
    report["privacy_claim"] = {"ledger_epsilon": epsilon, "ledger_delta": delta,
                               "reads_private_data": False}
    report["release_decision"] = decide(report, epsilon, thresholds)
    report["notice"] = NOTICE
    report["evaluated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return EvaluationResult(report=_json_safe(report), plots=plots)


def round_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """One generation round's diversity / shift headline numbers, for tracking across rounds.

    ``publishable`` holds synthetic-only numbers (self-BLEU, distinct-n); ``private`` holds
    numbers computed against real data (coverage, MAUVE, novelty; for tables the per-column and
    k-way marginal distances), which are not DP.
    """
    diversity = report.get("diversity") or {}
    shift = report.get("distribution_shift") or {}
    fidelity = report.get("fidelity") or {}
    publishable = {k: diversity[k] for k in ("self_bleu", "distinct_1", "distinct_2") if k in diversity}
    private = {k: shift[k] for k in ("embedding_coverage", "mauve", "novelty_2gram", "novelty_4gram") if k in shift}
    columns = fidelity.get("columns") or {}
    if columns:
        private["column_tvd_mean"] = float(np.mean([c["tvd"] for c in columns.values()]))
        ks = [c["ks"] for c in columns.values() if "ks" in c]
        if ks:
            private["column_ks_mean"] = float(np.mean(ks))
    for k, block in (fidelity.get("marginals") or {}).items():
        if isinstance(block, Mapping) and "mean" in block:
            private[f"tvd_{k}_mean"] = block["mean"]
    return {"evaluated_at": report.get("evaluated_at"), "kind": report.get("kind"),
            "publishable": publishable, "private": private, "reads_private_data": bool(private)}


def card_evals(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Compact ``evals`` for the card: headline numbers with their ``reads_private_data`` flags.

    ``diversity_metrics`` keeps a ``history`` of earlier rounds (pass the card's previous list) so
    diversity and distribution shift can be tracked across generation rounds (see
    :func:`round_summary`).
    """
    fidelity = report.get("fidelity") or {}
    utility = report.get("utility") or {}
    real_holdout = {
        "tstr": utility.get("tstr"),
        "ablation": utility.get("ablation"),
        "marginal_tvd": fidelity.get("marginals"),
        "sdmetrics_quality": (fidelity.get("sdmetrics_quality") or {}).get("overall"),
        "distribution_shift": {k: v for k, v in (report.get("distribution_shift") or {}).items()
                               if k not in ("sources",)} or None,
        "reads_private_data": True,
    }
    latest = round_summary(report)
    rounds = list(history or []) + [latest]
    audit = report.get("privacy_audit")
    return {
        "real_holdout": real_holdout,
        "contamination_scan": {k: v for k, v in (report.get("contamination") or {}).items()
                               if k != "sources"} or None,
        "diversity_metrics": {"latest": latest, "history": rounds},
        "privacy_audit": None if audit is None else {
            k: audit.get(k) for k in ("auc", "max_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1", "epsilon_lb",
                                      "epsilon_lb_ceiling", "confidence", "attack", "reads_private_data")
            if k in audit},
        "release_decision_reasons": report["release_decision"]["reasons"],
        "notice": NOTICE,
    }
