"""``evaluate(...)``: the whole evaluation checklist for one synthetic table or text corpus.

This module only dispatches: tables go to :mod:`dpsynth.evaluate.tabular_eval`, text corpora to
:mod:`dpsynth.evaluate.text_eval`; the release decision comes from :mod:`dpsynth.evaluate.decision`
and the card block from :mod:`dpsynth.evaluate.card_summary`.

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
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from dpsynth.evaluate import contamination as contam
from dpsynth.evaluate.card_summary import card_evals, round_summary
from dpsynth.evaluate.decision import DecisionThresholds, decide
from dpsynth.evaluate.errors import EvaluationInputError
from dpsynth.evaluate.sections import (
    DEFAULT_AUDIT_SIZE,
    DEFAULT_DELTA_FOR_AUDIT,
    MAX_EMBED,
    NOTICE,
    json_safe,
)
from dpsynth.evaluate.tabular_eval import evaluate_table
from dpsynth.evaluate.text_eval import evaluate_text

__all__ = ["DEFAULT_AUDIT_SIZE", "DEFAULT_DELTA_FOR_AUDIT", "MAX_EMBED", "NOTICE", "EvaluationResult",
           "card_evals", "evaluate", "round_summary"]


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
        return json.dumps(json_safe(self.report), indent=2, sort_keys=False)

    def card_evals(self) -> dict[str, Any]:
        """The compact ``evals`` block for the dataset card (see :func:`card_evals`)."""
        return card_evals(self.report)


def _ledger_numbers(ledger: Any, epsilon: float | None, delta: float | None) -> tuple[float | None, float]:
    if ledger is not None:
        epsilon = float(ledger.epsilon_spent) if epsilon is None else epsilon
        delta = float(ledger.delta_spent) if delta is None else delta
    if epsilon is not None and (math.isnan(epsilon) or epsilon < 0):
        raise EvaluationInputError(f"ledger epsilon must be >= 0 (or inf for a non-private run), got {epsilon}")
    return epsilon, (delta if delta is not None and delta > 0 else DEFAULT_DELTA_FOR_AUDIT)


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
        raise EvaluationInputError("audit_size must be >= 2")
    epsilon, delta = _ledger_numbers(ledger, ledger_epsilon, ledger_delta)
    bar = tqdm(total=4 if isinstance(synthetic, pd.DataFrame) else 5, desc="dpsynth evaluate", unit="step", disable=not progress)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    if isinstance(synthetic, pd.DataFrame):
        if not isinstance(real_holdout, pd.DataFrame) or (private is not None and not isinstance(private, pd.DataFrame)):
            raise TypeError("a synthetic table must be compared with real tables")
        report, plots = evaluate_table(synthetic, real_holdout, private, target,
                                       benchmark if isinstance(benchmark, pd.DataFrame) else None,
                                       ablation_ratio, delta, audit_size, run_sdmetrics, seed, step)
    else:
        if isinstance(synthetic, str) or isinstance(real_holdout, (str, pd.DataFrame)):
            raise TypeError("a synthetic corpus must be a list of texts compared with a list of real texts")
        name = embedder_name or ("custom" if embedder is not None else "char-ngram-hashing")
        report, plots = evaluate_text(list(synthetic), list(real_holdout),
                                      list(private) if private is not None else None,
                                      synthetic_labels, holdout_labels, private_labels, canaries,
                                      list(benchmark) if benchmark is not None else None,
                                      delta, audit_size, embedder, name, seed, step, epsilon=epsilon)
    bar.close()
    report["privacy_claim"] = {"ledger_epsilon": epsilon, "ledger_delta": delta,
                               "reads_private_data": False}
    report["release_decision"] = decide(report, epsilon, thresholds)
    report["notice"] = NOTICE
    report["evaluated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return EvaluationResult(report=json_safe(report), plots=plots)
