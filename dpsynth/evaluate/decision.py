"""The release decision: ``ship``, ``regenerate`` or ``reject`` from stated thresholds.

Rules, checked in this order (every triggered rule is listed in ``reasons``):

**reject** (the data must not be released as it is; regenerating with the same settings would
not fix a privacy or contamination failure):

* no ledger / no finite ledger epsilon: there is no privacy claim to stand on;
* the audit's empirical epsilon lower bound exceeds the ledger epsilon (the claim is false:
  a bug or a non-private generator);
* any planted canary leaked into the output;
* exact or near-duplicate copies of private records above ``max_copy_rate`` (for tables: the
  exact-match rate to private rows exceeds the holdout baseline by more than ``max_copy_rate``);
* benchmark contamination above ``max_copy_rate``;
* a gain that vanishes on the holdout: the augmentation ablation shows a gain on the private dev
  split (>= ``min_gain``) but none on the real holdout (<= 0).

**regenerate** (privacy is fine, utility or diversity is not):

* TSTR / TRTR below ``min_utility_ratio`` (or TSTR below ``min_tstr`` without a TRTR baseline);
* average 3-way marginal TVD, in excess of its bootstrap sampling floor, above ``max_tvd_3way``;
* texts: self-BLEU above ``max_self_bleu`` (collapse), embedding coverage below
  ``min_coverage``, MAUVE below ``min_mauve``.

Otherwise **ship**. ``notes`` flag evidence that is too weak to matter (e.g. an audit whose
``epsilon_lb_ceiling`` is below the ledger epsilon, so it could not have refuted the claim);
notes do not change the decision. The decision itself reads numbers computed from private data, so it is
internal evidence, not a publishable statistic.

**Every reason and note is marked with the data it read** (``findings`` and ``note_findings``, one
dict per entry of ``reasons`` / ``notes``, in the same order)::

    {"outcome": "reject", "rule": "audit_epsilon_lb", "reason": "audit epsilon lower bound ...",
     "reads_private_data": True, "reads_holdout_data": True, "sources": ["private", "real_holdout", "ledger"]}

``sources`` names every input the number came from: ``private`` (the generator's training data),
``real_holdout``, ``canaries`` (which canaries were planted is private), ``benchmark``, ``ledger``,
``synthetic``. ``reads_private_data`` is true when any of them holds real records (``private``,
``real_holdout`` or ``canaries``) -- the same meaning the flag has on every report section, so a
reader who drops everything flagged never publishes a holdout number -- and ``reads_holdout_data``
is true when the real holdout is among them. These dicts are what the dataset card's
``release_decision_reasons`` holds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

#: Sources that hold real records: a number read from any of them is not publishable.
REAL_SOURCES = frozenset({"private", "real_holdout", "canaries"})


@dataclass(frozen=True)
class DecisionThresholds:
    """Stated thresholds for :func:`decide` (documented in the module docstring)."""

    min_utility_ratio: float = 0.8
    min_tstr: float = 0.0
    max_tvd_3way: float = 0.15
    max_self_bleu: float = 0.9
    min_coverage: float = 0.3
    min_mauve: float = 0.3
    max_copy_rate: float = 0.01
    min_gain: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Plain-dict form for reports."""
        return asdict(self)


def finding(outcome: str, rule: str, reason: str, sources: Sequence[str]) -> dict[str, Any]:
    """One decision reason (or note) marked with the inputs its numbers came from (see module doc)."""
    ordered = list(dict.fromkeys(sources))
    return {"outcome": outcome, "rule": rule, "reason": reason,
            "reads_private_data": any(src in REAL_SOURCES for src in ordered),
            "reads_holdout_data": "real_holdout" in ordered, "sources": ordered}


def _sources(report: Mapping[str, Any], section: str, default: Sequence[str]) -> list[str]:
    """The real sources a report section says it read (``default`` when it does not say)."""
    block = report.get(section)
    listed = block.get("sources") if isinstance(block, Mapping) else None
    return list(listed) if listed else list(default)


def _get(report: Mapping[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def decide(
    report: Mapping[str, Any],
    ledger_epsilon: float | None,
    thresholds: DecisionThresholds | None = None,
) -> dict[str, Any]:
    """Apply the rules to an evaluation ``report`` (as built by :func:`dpsynth.evaluate.evaluate`).

    Returns ``{"decision": "ship"|"regenerate"|"reject", "reasons": [str], "findings": [marked
    dict], "notes": [str], "note_findings": [marked dict], "thresholds": {...}, ...}``. The decision
    is always ``reads_private_data: true`` (which rules fired, and which did not, depends on real data).
    """
    t = thresholds or DecisionThresholds()
    rejects: list[dict[str, Any]] = []
    regenerates: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []

    def reject(rule: str, reason: str, sources: Sequence[str]) -> None:
        rejects.append(finding("reject", rule, reason, sources))

    def regenerate(rule: str, reason: str, sources: Sequence[str]) -> None:
        regenerates.append(finding("regenerate", rule, reason, sources))

    if ledger_epsilon is None or not math.isfinite(ledger_epsilon):
        reject("no_privacy_claim", f"no finite ledger epsilon (got {ledger_epsilon}); the data has no DP claim",
               ["ledger"])

    audit_sources = _sources(report, "privacy_audit", ["private", "real_holdout"]) + ["synthetic", "ledger"]
    audit_lb = _get(report, "privacy_audit", "epsilon_lb")
    if audit_lb is not None and ledger_epsilon is not None and audit_lb > ledger_epsilon:
        reject("audit_epsilon_lb", f"audit epsilon lower bound {audit_lb:.3g} exceeds the ledger epsilon "
               f"{ledger_epsilon:.3g}: the privacy claim is contradicted", audit_sources)

    ceiling = _get(report, "privacy_audit", "epsilon_lb_ceiling")
    if ceiling is not None and ledger_epsilon is not None and math.isfinite(ledger_epsilon) \
            and ceiling <= ledger_epsilon:
        notes.append(finding("note", "audit_too_small",
                             f"the audit is too small to refute epsilon {ledger_epsilon:.3g} (a perfect attack "
                             f"would reach {ceiling:.3g}); add canaries / audit records for a meaningful check",
                             audit_sources))

    leaked = _get(report, "contamination", "canaries", "leaked_members")
    if leaked:
        reject("canaries_leaked", f"{leaked} planted canaries leaked into the output", ["canaries", "synthetic"])

    copy_sources = {"exact_overlap_private": ["private"], "near_duplicates_private": ["private"],
                    "benchmark_exact": ["benchmark"], "benchmark_near": ["benchmark"]}
    for name, sources in copy_sources.items():
        rate = _get(report, "contamination", name, "rate")
        if rate is None:
            continue
        uses_holdout_baseline = name == "exact_overlap_private" and _get(report, "kind") == "table"
        baseline = _get(report, "contamination", "exact_overlap_holdout", "rate") if uses_holdout_baseline else 0.0
        excess = rate - (baseline or 0.0)
        if excess > t.max_copy_rate:
            reject(name, f"{name}: rate {rate:.3g} exceeds the allowed {t.max_copy_rate:.3g}"
                   + (f" over the holdout baseline {baseline:.3g}" if baseline else ""),
                   sources + (["real_holdout"] if uses_holdout_baseline else []) + ["synthetic"])

    gain_dev = _get(report, "utility", "ablation", "gain_dev")
    gain_hold = _get(report, "utility", "ablation", "gain_holdout")
    if gain_dev is not None and gain_hold is not None and gain_dev >= t.min_gain and gain_dev > 0 \
            and gain_hold <= 0:
        reject("gain_vanishes_on_holdout", f"the gain from adding synthetic data vanishes on the holdout "
               f"(dev {gain_dev:+.3g}, holdout {gain_hold:+.3g})", ["private", "real_holdout", "synthetic"])

    ratio = _get(report, "utility", "tstr", "ratio")
    tstr = _get(report, "utility", "tstr", "tstr")
    if ratio is not None and ratio < t.min_utility_ratio:
        regenerate("tstr_trtr_ratio", f"TSTR/TRTR {ratio:.3g} below {t.min_utility_ratio:.3g}",
                   ["synthetic", "private", "real_holdout"])
    elif ratio is None and tstr is not None and tstr < t.min_tstr:
        regenerate("tstr", f"TSTR {tstr:.3g} below {t.min_tstr:.3g}", ["synthetic", "real_holdout"])

    tvd3 = _get(report, "fidelity", "marginals", "3way", "excess_mean")
    if tvd3 is None:
        tvd3 = _get(report, "fidelity", "marginals", "3way", "mean")
    if tvd3 is not None and tvd3 > t.max_tvd_3way:
        regenerate("tvd_3way", f"mean 3-way marginal TVD above the sampling floor {tvd3:.3g} > {t.max_tvd_3way:.3g}",
                   ["synthetic", "real_holdout"])

    checks = (("diversity", "self_bleu", t.max_self_bleu, "above", lambda v, lim: v > lim, ["synthetic"]),
              ("distribution_shift", "embedding_coverage", t.min_coverage, "below", lambda v, lim: v < lim,
               ["synthetic", "real_holdout"]),
              ("distribution_shift", "mauve", t.min_mauve, "below", lambda v, lim: v < lim,
               ["synthetic", "real_holdout"]))
    for section, key, limit, word, failed, sources in checks:
        value = _get(report, section, key)
        if value is not None and failed(value, limit):
            regenerate(key, f"{key} {value:.3g} {word} {limit:.3g}", sources)

    findings = rejects + regenerates
    decision = "reject" if rejects else ("regenerate" if regenerates else "ship")
    read = [src for f in findings + notes for src in f["sources"]]
    return {"decision": decision, "reasons": [f["reason"] for f in findings], "findings": findings,
            "notes": [n["reason"] for n in notes], "note_findings": notes, "thresholds": t.as_dict(),
            "ledger_epsilon": ledger_epsilon, "reads_private_data": True,
            "reads_holdout_data": "real_holdout" in read, "sources": list(dict.fromkeys(read))}
