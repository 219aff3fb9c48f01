"""Evaluation of one synthetic **text corpus** against real texts: diversity, shift, utility,
contamination, audit.

Reads: the synthetic corpus (a DP release); the real holdout; when given, the private training
texts and planted canaries. ``diversity`` reads the synthetic texts only (``reads_private_data:
false``, publishable); every other section is marked with its real ``sources`` (see
:mod:`dpsynth.evaluate.sections`). The canary audit assumes canaries were planted by coin flip
before generation (:mod:`dpsynth.evaluate.audit`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from dpsynth.evaluate import audit as audit_mod
from dpsynth.evaluate import contamination as contam
from dpsynth.evaluate import text_metrics as txt
from dpsynth.evaluate.errors import EvaluationInputError
from dpsynth.evaluate.sections import MAX_EMBED, sample_list, section

__all__ = ["evaluate_text"]


def evaluate_text(
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
    epsilon: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The text sections of the report and the embedding plot's data; ``step`` reports progress."""
    if len(synthetic) == 0 or len(holdout) == 0:
        raise EvaluationInputError("the synthetic and holdout corpora must be non-empty")
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"kind": "text", "dataset": {"synthetic_texts": len(synthetic)}}
    diversity = {"self_bleu": txt.self_bleu(synthetic, seed=seed) if len(synthetic) > 1 else None,
                 "distinct_1": txt.distinct_n(synthetic, 1), "distinct_2": txt.distinct_n(synthetic, 2)}
    report["diversity"] = section(False, [], **diversity)
    step("diversity")

    embed = embedder or txt.hashing_embedder()
    syn_sample = sample_list(synthetic, MAX_EMBED, rng)
    hold_sample = sample_list(holdout, MAX_EMBED, rng)
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
    report["distribution_shift"] = section(True, ["real_holdout"] + (["private"] if private is not None else []),
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
    report["utility"] = section(True, ["real_holdout"] + (["private"] if private is not None else []), **utility)
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
    report["contamination"] = section(bool(sources), sources, **contamination)
    step("contamination")

    if canaries and any(c.member for c in canaries) and any(not c.member for c in canaries):
        audit = audit_mod.text_canary_audit(synthetic, canaries, delta, seed=seed, claimed_epsilon=epsilon)
        report["privacy_audit"] = section(True, ["canaries"], **audit)
    elif private is not None:
        n = min(audit_size, len(private), len(holdout))
        audit = audit_mod.text_record_audit(synthetic, sample_list(private, n, rng),
                                            sample_list(holdout, n, rng), delta, seed=seed)
        report["privacy_audit"] = section(True, ["private", "real_holdout"], **audit)

    step("privacy_audit")
    n_plot = min(300, len(syn_emb), len(hold_emb))
    hold_2d, syn_2d = txt.project_2d(hold_emb[:n_plot], syn_emb[:n_plot])
    plots = {"embedding_2d": {"real": hold_2d.tolist(), "synthetic": syn_2d.tolist(),
                              "coverage": shift["embedding_coverage"]}}
    return report, plots
