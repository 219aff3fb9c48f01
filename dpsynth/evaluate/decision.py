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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping


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

    Returns ``{"decision": "ship"|"regenerate"|"reject", "reasons": [...], "thresholds": {...}}``.
    """
    t = thresholds or DecisionThresholds()
    rejects: list[str] = []
    regenerates: list[str] = []

    if ledger_epsilon is None or not math.isfinite(ledger_epsilon):
        rejects.append(f"no finite ledger epsilon (got {ledger_epsilon}); the data has no DP claim")

    audit_lb = _get(report, "privacy_audit", "epsilon_lb")
    if audit_lb is not None and ledger_epsilon is not None and audit_lb > ledger_epsilon:
        rejects.append(f"audit epsilon lower bound {audit_lb:.3g} exceeds the ledger epsilon "
                       f"{ledger_epsilon:.3g}: the privacy claim is contradicted")

    ceiling = _get(report, "privacy_audit", "epsilon_lb_ceiling")
    notes: list[str] = []
    if ceiling is not None and ledger_epsilon is not None and math.isfinite(ledger_epsilon) \
            and ceiling <= ledger_epsilon:
        notes.append(f"the audit is too small to refute epsilon {ledger_epsilon:.3g} (a perfect attack "
                     f"would reach {ceiling:.3g}); add canaries / audit records for a meaningful check")

    leaked = _get(report, "contamination", "canaries", "leaked_members")
    if leaked:
        rejects.append(f"{leaked} planted canaries leaked into the output")

    for name in ("exact_overlap_private", "near_duplicates_private", "benchmark_exact", "benchmark_near"):
        rate = _get(report, "contamination", name, "rate")
        if rate is None:
            continue
        baseline = _get(report, "contamination", "exact_overlap_holdout", "rate") \
            if name == "exact_overlap_private" and _get(report, "kind") == "table" else 0.0
        excess = rate - (baseline or 0.0)
        if excess > t.max_copy_rate:
            rejects.append(f"{name}: rate {rate:.3g} exceeds the allowed {t.max_copy_rate:.3g}"
                           + (f" over the holdout baseline {baseline:.3g}" if baseline else ""))

    gain_dev = _get(report, "utility", "ablation", "gain_dev")
    gain_hold = _get(report, "utility", "ablation", "gain_holdout")
    if gain_dev is not None and gain_hold is not None and gain_dev >= t.min_gain and gain_dev > 0 \
            and gain_hold <= 0:
        rejects.append(f"the gain from adding synthetic data vanishes on the holdout "
                       f"(dev {gain_dev:+.3g}, holdout {gain_hold:+.3g})")

    ratio = _get(report, "utility", "tstr", "ratio")
    tstr = _get(report, "utility", "tstr", "tstr")
    if ratio is not None and ratio < t.min_utility_ratio:
        regenerates.append(f"TSTR/TRTR {ratio:.3g} below {t.min_utility_ratio:.3g}")
    elif ratio is None and tstr is not None and tstr < t.min_tstr:
        regenerates.append(f"TSTR {tstr:.3g} below {t.min_tstr:.3g}")

    tvd3 = _get(report, "fidelity", "marginals", "3way", "excess_mean")
    if tvd3 is None:
        tvd3 = _get(report, "fidelity", "marginals", "3way", "mean")
    if tvd3 is not None and tvd3 > t.max_tvd_3way:
        regenerates.append(f"mean 3-way marginal TVD above the sampling floor {tvd3:.3g} > {t.max_tvd_3way:.3g}")

    checks = (("diversity", "self_bleu", t.max_self_bleu, "above", lambda v, lim: v > lim),
              ("distribution_shift", "embedding_coverage", t.min_coverage, "below", lambda v, lim: v < lim),
              ("distribution_shift", "mauve", t.min_mauve, "below", lambda v, lim: v < lim))
    for section, key, limit, word, failed in checks:
        value = _get(report, section, key)
        if value is not None and failed(value, limit):
            regenerates.append(f"{key} {value:.3g} {word} {limit:.3g}")

    decision = "reject" if rejects else ("regenerate" if regenerates else "ship")
    return {"decision": decision, "reasons": rejects + regenerates, "notes": notes, "thresholds": t.as_dict(),
            "ledger_epsilon": ledger_epsilon, "reads_private_data": True}
