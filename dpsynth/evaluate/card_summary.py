"""The compact, flagged ``evals`` block of the dataset card, and per-round tracking summaries.

Everything here post-processes an evaluation report; nothing reads data. Every number that came
from real records keeps a ``reads_private_data`` flag (and, for the release decision's reasons,
``reads_holdout_data`` and ``sources``) so a card reader can tell what must not be published.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from dpsynth.evaluate.decision import REAL_SOURCES, DecisionThresholds, decide
from dpsynth.evaluate.sections import NOTICE

__all__ = ["WITHHELD", "card_evals", "public_card_evals", "round_summary"]


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

    ``release_decision_reasons`` (and ``release_decision_notes``) are the decision's marked
    findings: each reason's text with ``reads_private_data``, ``reads_holdout_data`` and
    ``sources`` (see :mod:`dpsynth.evaluate.decision`); ``release_decision_evidence`` flags the
    decision itself, which always reads real data.

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
        **_marks(["real_holdout", *_listed(utility), *_listed(fidelity)]),
    }
    latest = round_summary(report)
    rounds = list(history or []) + [latest]
    audit = report.get("privacy_audit")
    contamination = report.get("contamination") or {}
    findings, note_findings = _marked_findings(report)
    decision = report["release_decision"]
    read = [src for f in findings + note_findings for src in f["sources"]]
    return {
        "real_holdout": real_holdout,
        "contamination_scan": {**{k: v for k, v in contamination.items() if k not in ("sources", "reads_private_data")},
                               **_marks(_listed(contamination))} if contamination else None,
        "diversity_metrics": {"latest": latest, "history": rounds},
        "privacy_audit": None if audit is None else {
            **{k: audit.get(k) for k in ("auc", "max_auc", "tpr_at_fpr_0.01", "tpr_at_fpr_0.1", "epsilon_lb",
                                         "epsilon_lb_ceiling", "confidence", "attack") if k in audit},
            **_marks(_listed(audit))},
        "release_decision_reasons": findings,
        "release_decision_notes": note_findings,
        "release_decision_evidence": {"decision": decision.get("decision"), "reads_private_data": True,
                                      "reads_holdout_data": "real_holdout" in read,
                                      "sources": list(dict.fromkeys(read))},
        "notice": NOTICE,
    }


def _listed(block: Mapping[str, Any] | None) -> list[str]:
    return list((block or {}).get("sources") or [])


def _marks(sources: Sequence[str]) -> dict[str, Any]:
    """``reads_private_data`` / ``reads_holdout_data`` / ``sources`` for numbers read from ``sources``."""
    ordered = list(dict.fromkeys(sources))
    return {"reads_private_data": any(src in REAL_SOURCES for src in ordered),
            "reads_holdout_data": "real_holdout" in ordered, "sources": ordered}


def _marked_findings(report: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decision's marked reasons and notes; recomputed with :func:`decide` for a report written
    before reasons were marked (its ``thresholds`` and ``ledger_epsilon`` are in the report)."""
    decision = report["release_decision"]
    if "findings" not in decision:
        thresholds = DecisionThresholds(**(decision.get("thresholds") or {}))
        decision = decide(report, decision.get("ledger_epsilon"), thresholds)
    return ([dict(f) for f in decision.get("findings", [])], [dict(f) for f in decision.get("note_findings", [])])


#: What stands in the card for a block computed from real records, unless the owner asks for it.
WITHHELD = {"withheld": True,
            "why": "computed from real records (private or holdout data) without DP; it is in the evaluation "
                   "report (SYNTH.eval.json) only. `dpsynth evaluate --card-private-evals` writes it here."}


def public_card_evals(evals: Mapping[str, Any]) -> dict[str, Any]:
    """``evals`` (from :func:`card_evals`) with every block marked ``reads_private_data: true``
    replaced by :data:`WITHHELD`, a list of such blocks by ``[]``, and a round summary's
    ``private`` numbers dropped (its synthetic-only ``publishable`` numbers stay).

    This is the card's default: the card travels with the data, and only numbers computed from
    the synthetic data alone -- post-processing of the DP release -- are covered by its guarantee.
    """
    def strip(node: Any) -> Any:
        if isinstance(node, Mapping):
            if "publishable" in node and "private" in node:  # a round summary (round_summary)
                return {**{k: v for k, v in node.items() if k != "private"}, "reads_private_data": False}
            if node.get("reads_private_data") is True:
                return dict(WITHHELD)
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [item for item in (strip(v) for v in node) if item != WITHHELD]
        return node

    return {k: strip(v) for k, v in evals.items()}
