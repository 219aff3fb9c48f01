"""Empirical privacy audits: membership inference against a released synthetic dataset.

An audit *reads private data* (it needs to know who was a member), so its numbers are not DP,
are marked ``reads_private_data: true`` and must not be published; they are evidence for the
release decision only. An audit can show that a privacy claim is **false** (empirical epsilon
lower bound above the ledger's epsilon); it can never prove a claim true.

Setting and validity
--------------------
``in_scores`` are attack scores (higher = "more likely a member") of records that were in the
generator's input, ``out_scores`` of records that were not. The epsilon lower bounds below are
valid (hold with probability >= 1 - alpha under (epsilon, delta)-DP of the generator, with
respect to add/remove-one of a record) when membership was decided by independent fair coin
flips *before* generation (canaries planted with probability 1/2, or a random private/holdout
split of the candidate records) and the attack is fixed before looking at the scores.

Two bounds are computed, each at level ``alpha / 2``, and ``epsilon_lb`` is their maximum (a
union bound keeps the overall level at ``alpha``):

* **Clopper-Pearson, split threshold** (Jagielski et al. 2020; Nasr et al. 2021): a random half
  of the scores picks the threshold and direction; on the other half
  ``eps = ln((TPR_lower - delta) / FPR_upper)`` with one-sided Clopper-Pearson bounds (each at
  ``alpha / 4``). Choosing on one half and testing on the other makes the single test valid
  without a Bonferroni correction over candidate thresholds. The per-record trials are treated
  as independent, the standard black-box audit assumption: the bound is valid at level
  ``alpha / 2`` under that assumption, not unconditionally (records of one generator run are not
  independent in general).
* **One-run audit** (Steinke, Nasr & Jagielski 2023): guess "member" for the ``k`` highest and
  "non-member" for the ``k`` lowest scores; with ``v`` correct out of ``r = 2k`` guesses, reject
  epsilon when ``P[Binomial(r, e^eps / (1 + e^eps)) >= v] + 2 m delta max_i P[v > Bin >= v - i] / i
  <= alpha'`` (``m`` = number of candidates; their Theorem 5.2 / Appendix D).
  ``k`` ranges over a grid fixed in advance with a Bonferroni correction over the grid. This
  bound is valid even though all guesses come from one generator run (the rigorous one of the two).

Canaries planted several times test a group of records (group privacy): see
:func:`text_canary_audit`.

AUC and TPR at 1% / 10% FPR are reported as descriptive attack strength, and
``epsilon_lb_ceiling`` is the bound a perfect attack would reach with the same numbers of members
and non-members: the largest epsilon claim this audit could possibly refute.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from dpsynth.accounting.audit import clopper_pearson as two_sided_clopper_pearson
from dpsynth.evaluate.errors import EvaluationInputError
from dpsynth.evaluate.text_metrics import tokenize

DEFAULT_ALPHA = 0.05
ONE_RUN_FRACTIONS = (0.05, 0.1, 0.25, 0.5)
LOW_FPRS = (0.01, 0.1)
MAX_KDE_ROWS = 5000


def _as_scores(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise EvaluationInputError(f"{name} must be a non-empty 1-D sequence of scores")
    if not np.all(np.isfinite(arr)):
        raise EvaluationInputError(f"{name} contains NaN or infinite scores")
    return arr


def roc_auc(in_scores: Sequence[float], out_scores: Sequence[float]) -> float:
    """Probability that a random member outscores a random non-member (ties count 1/2)."""
    a, b = _as_scores(in_scores, "in_scores"), _as_scores(out_scores, "out_scores")
    ranks = stats.rankdata(np.concatenate([a, b]))
    return float((ranks[:a.size].sum() - a.size * (a.size + 1) / 2) / (a.size * b.size))


def tpr_at_fpr(in_scores: Sequence[float], out_scores: Sequence[float], fpr: float) -> float:
    """Empirical TPR of the rule ``score > t`` with the smallest ``t`` whose empirical FPR <= ``fpr``."""
    a, b = _as_scores(in_scores, "in_scores"), _as_scores(out_scores, "out_scores")
    allowed = int(math.floor(fpr * b.size))
    ordered = np.sort(b)[::-1]
    threshold = ordered[allowed] if allowed < b.size else -np.inf
    return float(np.mean(a > threshold))


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """One-sided Clopper-Pearson bounds: ``(lower, upper)``, each holding with prob >= 1 - alpha.

    The two-sided interval of :func:`dpsynth.accounting.audit.clopper_pearson` at level ``2 alpha``.
    """
    if trials <= 0:
        return 0.0, 1.0
    return two_sided_clopper_pearson(successes, trials, 2 * alpha)


def _cp_epsilon(tp: int, n_pos: int, fp: int, n_neg: int, delta: float, alpha: float) -> float:
    tpr_lo, _ = clopper_pearson(tp, n_pos, alpha / 2)
    _, fpr_hi = clopper_pearson(fp, n_neg, alpha / 2)
    if tpr_lo - delta <= 0 or fpr_hi <= 0:
        return 0.0
    return max(0.0, math.log((tpr_lo - delta) / fpr_hi))


def _cp_epsilons(tp: np.ndarray, n_pos: int, fp: np.ndarray, n_neg: int, delta: float, alpha: float) -> np.ndarray:
    """Vectorised :func:`_cp_epsilon` over arrays of counts."""
    tp, fp = np.asarray(tp), np.asarray(fp)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr_lo = np.where(tp > 0, stats.beta.ppf(alpha / 2, np.maximum(tp, 1), n_pos - tp + 1), 0.0)
        fpr_hi = np.where(fp < n_neg, stats.beta.ppf(1 - alpha / 2, fp + 1, np.maximum(n_neg - fp, 1)), 1.0)
        eps = np.log(np.maximum(tpr_lo - delta, 0.0) / fpr_hi)
    eps = np.where(np.isfinite(eps), eps, 0.0)
    return np.maximum(eps, 0.0)


def _rule_counts(a: np.ndarray, b: np.ndarray, threshold: float, direction: int) -> tuple[int, int]:
    """(true positives, false positives) of ``direction * score >= direction * threshold``."""
    return int(np.sum(direction * a >= direction * threshold)), int(np.sum(direction * b >= direction * threshold))


def epsilon_lb_clopper_pearson(
    in_scores: Sequence[float],
    out_scores: Sequence[float],
    delta: float,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, Any]:
    """Split-threshold Clopper-Pearson lower bound on epsilon (see module docstring)."""
    a, b = _as_scores(in_scores, "in_scores"), _as_scores(out_scores, "out_scores")
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(a), rng.permutation(b)
    a_sel, a_test = a[: a.size // 2], a[a.size // 2:]
    b_sel, b_test = b[: b.size // 2], b[b.size // 2:]
    if a_sel.size == 0 or b_sel.size == 0:
        return {"epsilon_lb": 0.0, "threshold": None, "direction": None}
    best = (0.0, None, 1)
    thresholds = np.unique(np.concatenate([a_sel, b_sel]))
    a_sorted, b_sorted = np.sort(a_sel), np.sort(b_sel)
    for direction in (1, -1):
        # direction -1 means the rule "score <= t" flags members (an attack that is backwards).
        if direction == 1:
            tp = a_sel.size - np.searchsorted(a_sorted, thresholds, side="left")
            fp = b_sel.size - np.searchsorted(b_sorted, thresholds, side="left")
        else:
            tp = np.searchsorted(a_sorted, thresholds, side="right")
            fp = np.searchsorted(b_sorted, thresholds, side="right")
        eps = _cp_epsilons(tp, a_sel.size, fp, b_sel.size, delta, alpha)
        i = int(np.argmax(eps))
        if eps[i] > best[0]:
            best = (float(eps[i]), float(thresholds[i]), direction)
    if best[1] is None:
        return {"epsilon_lb": 0.0, "threshold": None, "direction": None}
    tp, fp = _rule_counts(a_test, b_test, best[1], best[2])
    eps = _cp_epsilon(tp, a_test.size, fp, b_test.size, delta, alpha)
    return {"epsilon_lb": eps, "threshold": best[1], "direction": best[2],
            "test_tpr": tp / a_test.size, "test_fpr": fp / b_test.size}


def _one_run_p_value(epsilon: float, correct: int, guesses: int, candidates: int, delta: float) -> float:
    """Steinke et al. (2023, Thm 5.2 / App. D) p-value of ``>= correct`` right guesses under (eps, delta)-DP."""
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(correct - 1, guesses, q))
    if delta == 0 or correct == 0:
        return min(tail, 1.0)
    below = stats.binom.pmf(np.arange(correct - 1, -1, -1), guesses, q)  # P[Bin = v-1], P[Bin = v-2], ...
    worst = float(np.max(np.cumsum(below) / np.arange(1, correct + 1)))
    return min(tail + worst * delta * 2 * candidates, 1.0)


def epsilon_lb_one_run(
    in_scores: Sequence[float],
    out_scores: Sequence[float],
    delta: float,
    alpha: float = DEFAULT_ALPHA,
    fractions: Sequence[float] = ONE_RUN_FRACTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """Steinke-Nasr-Jagielski one-run lower bound, Bonferroni over ``fractions`` (see module doc).

    Ties between scores are broken by a seeded random permutation, so the guesses never depend
    on which list a tied record came from.
    """
    a, b = _as_scores(in_scores, "in_scores"), _as_scores(out_scores, "out_scores")
    scores = np.concatenate([a, b])
    member = np.concatenate([np.ones(a.size, bool), np.zeros(b.size, bool)])
    shuffle = np.random.default_rng(seed).permutation(scores.size)
    order = shuffle[np.argsort(scores[shuffle], kind="stable")]
    m = scores.size
    level = alpha / len(fractions)
    best: dict[str, Any] = {"epsilon_lb": 0.0, "guesses": 0, "correct": 0}
    for fraction in fractions:
        k = max(1, int(fraction * m))
        if 2 * k > m:
            k = m // 2
        if k == 0:
            continue
        low, high = order[:k], order[m - k:]
        correct = int(member[high].sum() + (~member[low]).sum())
        guesses = 2 * k
        if _one_run_p_value(0.0, correct, guesses, m, delta) > level:
            continue
        lo, hi = 0.0, 1.0
        while _one_run_p_value(hi, correct, guesses, m, delta) <= level and hi < 64:
            lo, hi = hi, hi * 2
        for _ in range(50):
            mid = (lo + hi) / 2
            if _one_run_p_value(mid, correct, guesses, m, delta) <= level:
                lo = mid
            else:
                hi = mid
        if lo > best["epsilon_lb"]:
            best = {"epsilon_lb": lo, "guesses": guesses, "correct": correct}
    return best


def summarise_attack(
    in_scores: Sequence[float],
    out_scores: Sequence[float],
    delta: float,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC, TPR at 1%/10% FPR, and the combined epsilon lower bound (valid at level ``alpha``)."""
    if not (0.0 <= delta < 1.0) or not math.isfinite(delta):
        raise EvaluationInputError(f"delta must be in [0, 1), got {delta!r}")
    if not 0.0 < alpha < 1.0:
        raise EvaluationInputError(f"alpha must be in (0, 1), got {alpha!r}")
    cp = epsilon_lb_clopper_pearson(in_scores, out_scores, delta, alpha / 2, seed)
    one_run = epsilon_lb_one_run(in_scores, out_scores, delta, alpha / 2, seed=seed)
    n_in, n_out = len(in_scores), len(out_scores)
    perfect_in, perfect_out = np.ones(n_in), np.zeros(n_out)
    ceiling = max(epsilon_lb_clopper_pearson(perfect_in, perfect_out, delta, alpha / 2, seed)["epsilon_lb"],
                  epsilon_lb_one_run(perfect_in, perfect_out, delta, alpha / 2, seed=seed)["epsilon_lb"])
    return {
        "auc": roc_auc(in_scores, out_scores),
        **{f"tpr_at_fpr_{f:g}": tpr_at_fpr(in_scores, out_scores, f) for f in LOW_FPRS},
        "epsilon_lb": max(cp["epsilon_lb"], one_run["epsilon_lb"]),
        "epsilon_lb_clopper_pearson": cp,
        "epsilon_lb_one_run": one_run,
        # what a perfect attack would reach with these sample sizes: a claim above this cannot
        # be refuted by this audit however leaky the generator is
        "epsilon_lb_ceiling": ceiling,
        "n_members": n_in, "n_non_members": n_out,
        "confidence": 1 - alpha, "delta": delta,
    }


# --------------------------------------------------------------------------- text attack


class NgramLanguageModel:
    """Interpolated add-one n-gram LM (orders 1..n) fitted on a corpus; the text attack's model."""

    def __init__(self, corpus: Sequence[str], order: int = 3, weights: Sequence[float] | None = None):
        if order < 1:
            raise EvaluationInputError("order must be >= 1")
        self.order = order
        self.weights = np.asarray(weights or [2.0 ** i for i in range(order)], dtype=float)
        self.weights = self.weights / self.weights.sum()
        self.counts = [Counter() for _ in range(order)]
        self.context_counts = [Counter() for _ in range(order)]
        vocab: set[str] = set()
        for text in corpus:
            tokens = ["<s>"] * (order - 1) + tokenize(text)
            vocab.update(tokens)
            for n in range(1, order + 1):
                for i in range(order - 1, len(tokens)):
                    if i - n + 1 < 0:
                        continue
                    gram = tuple(tokens[i - n + 1:i + 1])
                    self.counts[n - 1][gram] += 1
                    self.context_counts[n - 1][gram[:-1]] += 1
        self.vocab_size = len(vocab) + 1  # + unknown

    def log_prob(self, token: str, history: Sequence[str]) -> float:
        """log P(token | history) under the interpolated model."""
        prob = 0.0
        for n in range(1, self.order + 1):
            context = tuple(history[len(history) - (n - 1):]) if n > 1 else ()
            if n > 1 and len(history) < n - 1:
                continue
            count = self.counts[n - 1][context + (token,)]
            total = self.context_counts[n - 1][context]
            prob += self.weights[n - 1] * (count + 1) / (total + self.vocab_size)
        return math.log(prob)

    def score_continuation(self, prefix: str, suffix: str) -> float:
        """Mean log-probability of the suffix tokens given the prefix (higher = more familiar)."""
        history = ["<s>"] * (self.order - 1) + tokenize(prefix)
        tokens = tokenize(suffix)
        if not tokens:
            raise EvaluationInputError("empty canary suffix")
        total = 0.0
        for token in tokens:
            total += self.log_prob(token, history)
            history.append(token)
        return total / len(tokens)


def group_delta(delta: float, repetitions: int, epsilon: float) -> float:
    """delta of a group of ``repetitions`` records under (epsilon, delta)-DP per record: group
    privacy gives (r epsilon, r e^{(r-1) epsilon} delta) (Dwork & Roth, Thm 2.2 extended); capped
    below 1."""
    if repetitions == 1:
        return delta
    return min(repetitions * math.exp((repetitions - 1) * epsilon) * delta, 1.0 - 1e-12)


def text_canary_audit(
    synthetic_texts: Sequence[str],
    canaries: Sequence[Any],
    delta: float,
    alpha: float = DEFAULT_ALPHA,
    order: int = 3,
    seed: int = 0,
    claimed_epsilon: float | None = None,
) -> dict[str, Any]:
    """Canary membership inference against a synthetic corpus (Canary's Echo style).

    Fits an n-gram LM on ``synthetic_texts`` and scores every canary's rare suffix given its
    in-distribution prefix; members (planted) vs non-members (never planted) give the attack's
    AUC, TPR at low FPR and the epsilon lower bound (see module docstring).

    Canaries planted ``r > 1`` times (``repetitions``; all canaries must share one ``r``) make the
    datasets with and without a canary differ in ``r`` records, so the attack tests a group: under
    a claim of (epsilon, delta) per record the group is (r epsilon, ``group_delta``)-DP. The bounds
    are computed at the group's delta under ``claimed_epsilon`` (the ledger's; the claim being
    tested) and divided by ``r``: ``epsilon_lb`` (and its ceiling) are per record, so ``epsilon_lb >
    claimed_epsilon`` refutes the claim exactly when the group bound exceeds ``r`` times it.
    ``epsilon_lb_group`` keeps the undivided figure.
    """
    if len(synthetic_texts) == 0:
        raise EvaluationInputError("the synthetic corpus is empty")
    reps = {int(getattr(c, "repetitions", 1)) for c in canaries}
    if len(reps) != 1 or min(reps) < 1:
        raise EvaluationInputError("every canary must be planted the same number of times (one 'repetitions')")
    r = reps.pop()
    lm = NgramLanguageModel(synthetic_texts, order=order)
    members = [lm.score_continuation(c.prefix, c.suffix) for c in canaries if c.member]
    others = [lm.score_continuation(c.prefix, c.suffix) for c in canaries if not c.member]
    if not members or not others:
        raise EvaluationInputError("the audit needs both planted (member) and unplanted canaries")
    result = summarise_group_attack(members, others, delta, r, claimed_epsilon, alpha, seed)
    result["attack"] = f"{order}-gram LM on synthetic corpus, canary suffix log-likelihood"
    return result


def summarise_group_attack(
    in_scores: Sequence[float],
    out_scores: Sequence[float],
    delta: float,
    repetitions: int,
    claimed_epsilon: float | None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`summarise_attack` for members that are groups of ``repetitions`` records, with the
    bounds per record (see :func:`text_canary_audit`). Without a finite ``claimed_epsilon`` the
    group's delta is unknown, so no per-record bound is given (``epsilon_lb`` is ``None``)."""
    if repetitions == 1:
        return summarise_attack(in_scores, out_scores, delta, alpha, seed)
    known = claimed_epsilon is not None and math.isfinite(claimed_epsilon)
    audit_delta = group_delta(delta, repetitions, float(claimed_epsilon)) if known else delta
    result = summarise_attack(in_scores, out_scores, audit_delta, alpha, seed)
    result.update({
        "group_size": repetitions, "epsilon_lb_group": result["epsilon_lb"], "delta": delta,
        "epsilon_lb_meaning": (
            "per record, at the group delta of the claimed epsilon: above the claim refutes it (a level-alpha "
            "test); when it refutes, the smallest per-record epsilon consistent with the data can be somewhat "
            "lower. The epsilon_lb_clopper_pearson / epsilon_lb_one_run blocks are per group."
            if known else
            "no claimed epsilon: the group's delta is unknown, so no per-record bound; epsilon_lb_group is "
            "computed at the per-record delta and overstates the group's bound"),
        "group_delta": audit_delta if known else None,
        "epsilon_lb": result["epsilon_lb"] / repetitions if known else None,
        "epsilon_lb_ceiling": result["epsilon_lb_ceiling"] / repetitions,
    })
    return result


def text_record_audit(
    synthetic_texts: Sequence[str],
    member_texts: Sequence[str],
    non_member_texts: Sequence[str],
    delta: float,
    alpha: float = DEFAULT_ALPHA,
    order: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Record-level membership inference when no canaries were planted.

    Scores each real text by its mean per-token log-likelihood under an n-gram LM fitted on the
    synthetic corpus; members are private (training) texts, non-members real holdout texts.
    The epsilon bound assumes the private/holdout split was random (see module docstring).
    """
    if len(synthetic_texts) == 0:
        raise EvaluationInputError("the synthetic corpus is empty")
    lm = NgramLanguageModel(synthetic_texts, order=order)

    def score(text: str) -> float:
        tokens = tokenize(text)
        return lm.score_continuation("", text) if tokens else 0.0

    result = summarise_attack([score(t) for t in member_texts], [score(t) for t in non_member_texts],
                              delta, alpha, seed)
    result["attack"] = f"{order}-gram LM on synthetic corpus, record log-likelihood"
    return result


# --------------------------------------------------------------------------- table attacks


def _encode_for_distance(frames: Sequence[pd.DataFrame], reference: pd.DataFrame) -> list[np.ndarray]:
    """Numeric columns scaled by the reference (synthetic) range; categoricals one-hot / sqrt(2).

    With this scaling the squared Euclidean distance adds at most ~1 per column, a Gower-like
    mixed-type distance. Scales come from the synthetic table (a DP output).
    """
    columns = list(reference.columns)
    blocks: list[list[np.ndarray]] = [[] for _ in frames]
    for column in columns:
        ref = reference[column]
        if pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref):
            lo, hi = float(np.nanmin(ref.to_numpy(dtype=float))), float(np.nanmax(ref.to_numpy(dtype=float)))
            scale = (hi - lo) or 1.0
            for i, frame in enumerate(frames):
                vals = (frame[column].to_numpy(dtype=float) - lo) / scale
                blocks[i].append(np.nan_to_num(vals, nan=-1.0)[:, None])
        else:
            cats = pd.Index(pd.unique(pd.concat([f[column].astype("string").fillna("<NA>") for f in frames])))
            for i, frame in enumerate(frames):
                idx = cats.get_indexer(frame[column].astype("string").fillna("<NA>"))
                onehot = np.zeros((len(frame), len(cats)))
                onehot[np.arange(len(frame)), idx] = 1.0 / math.sqrt(2.0)
                blocks[i].append(onehot)
    return [np.hstack(b) if b else np.zeros((len(f), 0)) for b, f in zip(blocks, frames)]


def distance_to_closest_record(targets: np.ndarray, synthetic: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Euclidean distance from each target row to its nearest synthetic row."""
    out = np.empty(len(targets))
    syn_sq = (synthetic ** 2).sum(1)
    chunk = max(1, min(chunk, 20_000_000 // max(1, len(synthetic))))  # bound the dense block's memory
    for start in range(0, len(targets), chunk):
        block = targets[start:start + chunk]
        sq = (block ** 2).sum(1)[:, None] + syn_sq[None, :] - 2 * block @ synthetic.T
        out[start:start + chunk] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return out


def _kde_log_density(train: np.ndarray, query: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import KernelDensity

    n, d = train.shape
    bandwidth = max(1e-3, float(np.mean(train.std(axis=0))) * n ** (-1.0 / (d + 4)))
    return KernelDensity(bandwidth=bandwidth).fit(train).score_samples(query)


def tabular_membership_audit(
    synthetic: pd.DataFrame,
    members: pd.DataFrame,
    non_members: pd.DataFrame,
    delta: float,
    reference: pd.DataFrame | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, Any]:
    """Membership inference on a synthetic table with two attacks.

    * **DCR**: score = minus the distance to the closest synthetic record (Gower-like encoding).
      A diagnostic, not privacy evidence on its own (Ganev & De Cristofaro 2023).
    * **DOMIAS-style density ratio** (van Breugel et al. 2023): score =
      ``log p_synth(x) - log p_reference(x)`` with Gaussian KDEs (the synthetic KDE uses at most
      ``MAX_KDE_ROWS`` seeded-random synthetic rows); needs ``reference`` real rows that are
      neither members nor audited non-members. Skipped without a reference.

    Each attack runs at level ``alpha / n_attacks``; ``epsilon_lb`` is the maximum.
    """
    for name, frame in (("synthetic", synthetic), ("members", members), ("non_members", non_members)):
        if len(frame) == 0:
            raise EvaluationInputError(f"the {name} table is empty")
    columns = list(members.columns)
    frames = [synthetic[columns], members, non_members[columns]]
    if reference is not None and len(reference) >= 2:
        frames.append(reference[columns])
    encoded = _encode_for_distance(frames, synthetic[columns])
    attacks: dict[str, Any] = {}
    n_attacks = 2 if len(frames) == 4 else 1
    syn, mem, non = encoded[0], encoded[1], encoded[2]
    dcr_in = -distance_to_closest_record(mem, syn)
    dcr_out = -distance_to_closest_record(non, syn)
    attacks["dcr"] = summarise_attack(dcr_in, dcr_out, delta, alpha / n_attacks, seed)
    attacks["dcr"]["median_dcr_members"] = float(np.median(-dcr_in))
    attacks["dcr"]["median_dcr_non_members"] = float(np.median(-dcr_out))
    if n_attacks == 2:
        ref = encoded[3]
        rng = np.random.default_rng(seed)
        kde_syn = syn if len(syn) <= MAX_KDE_ROWS else syn[rng.choice(len(syn), MAX_KDE_ROWS, replace=False)]
        score = lambda x: _kde_log_density(kde_syn, x) - _kde_log_density(ref, x)  # noqa: E731
        attacks["density_ratio"] = summarise_attack(score(mem), score(non), delta, alpha / n_attacks, seed)
    best = max(attacks.values(), key=lambda r: r["epsilon_lb"])
    return {"attacks": attacks, "epsilon_lb": best["epsilon_lb"], "auc": best["auc"],
            "epsilon_lb_ceiling": max(r["epsilon_lb_ceiling"] for r in attacks.values()),
            "max_auc": max(r["auc"] for r in attacks.values()),
            "confidence": 1 - alpha, "delta": delta,
            "n_members": len(members), "n_non_members": len(non_members)}
