"""Membership-inference audits: statistics, validity of the epsilon lower bound, and the end-to-end
property that the audit catches non-private generators and passes DP ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.evaluate import audit, contamination as contam, evaluate


WORDS = ("the a patient reported mild severe pain after surgery since monday with fever cough doctor "
         "nurse ward night morning gave took rest slept").split()


def corpus(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 12)) for _ in range(n)]


# ----------------------------------------------------------------------------- statistics


def test_auc_and_tpr_known_values():
    assert audit.roc_auc([2, 3, 4], [0, 1]) == 1.0
    assert audit.roc_auc([0, 1], [2, 3]) == 0.0
    assert audit.roc_auc([1, 1], [1, 1]) == 0.5
    assert audit.tpr_at_fpr([5, 6, 0.5], np.arange(100) / 100, 0.01) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        audit.roc_auc([], [1])
    with pytest.raises(ValueError):
        audit.roc_auc([np.nan], [1])


def test_clopper_pearson_closed_forms():
    lo, hi = audit.clopper_pearson(0, 10, 0.05)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.05 ** (1 / 10))
    lo, hi = audit.clopper_pearson(10, 10, 0.05)
    assert hi == 1.0 and lo == pytest.approx(0.05 ** (1 / 10))


def randomized_response_scores(epsilon, n, seed):
    """Scores of an optimal attack on epsilon-DP randomized response (plus tie-breaking jitter)."""
    rng = np.random.default_rng(seed)
    p = math.exp(epsilon) / (1 + math.exp(epsilon))
    members = (rng.random(n) < p) + 0.01 * rng.random(n)
    others = (rng.random(n) < 1 - p) + 0.01 * rng.random(n)
    return members, others


def test_epsilon_lower_bound_is_valid_and_reasonably_tight_for_randomized_response():
    violations = 0
    for seed in range(40):
        members, others = randomized_response_scores(1.0, 400, seed)
        violations += audit.summarise_attack(members, others, delta=0.0, seed=seed)["epsilon_lb"] > 1.0
    assert violations <= 5  # 95% confidence: about 2 expected out of 40, never many
    members, others = randomized_response_scores(1.0, 5000, 123)
    assert 0.7 < audit.summarise_attack(members, others, delta=0.0)["epsilon_lb"] <= 1.0


def test_epsilon_lower_bound_catches_an_overclaimed_mechanism():
    members, others = randomized_response_scores(3.0, 1000, 7)  # really epsilon = 3, claimed 1
    result = audit.summarise_attack(members, others, delta=1e-5)
    assert result["epsilon_lb"] > 1.0
    assert result["epsilon_lb_one_run"]["epsilon_lb"] > 1.0
    assert result["epsilon_lb_clopper_pearson"]["epsilon_lb"] > 1.0


def test_no_signal_gives_no_privacy_loss():
    rng = np.random.default_rng(0)
    result = audit.summarise_attack(rng.random(300), rng.random(300), delta=1e-5)
    assert abs(result["auc"] - 0.5) < 0.1 and result["epsilon_lb"] < 0.5


def test_bad_audit_parameters_are_refused():
    with pytest.raises(ValueError, match="delta"):
        audit.summarise_attack([1.0], [0.0], delta=float("nan"))
    with pytest.raises(ValueError, match="alpha"):
        audit.summarise_attack([1.0], [0.0], delta=0.0, alpha=0.0)


# ----------------------------------------------------------------------------- text audit


@pytest.fixture(scope="module")
def planted():
    private = corpus(300, 0)
    canaries = contam.make_canaries(private, 200, seed=1, prefix_words=5, repetitions=1)
    return private, canaries, contam.plant_canaries(private, canaries, seed=2)


def test_text_canary_audit_catches_a_copying_generator(planted):
    _, canaries, planted_corpus = planted
    result = audit.text_canary_audit(planted_corpus, canaries, delta=1e-5)  # generator = copy (eps = inf)
    assert result["auc"] > 0.95
    assert result["tpr_at_fpr_0.01"] > 0.9
    assert result["epsilon_lb"] > 2.0  # refutes any claim of epsilon <= 2


def test_text_canary_audit_passes_a_generator_that_never_sees_the_private_data(planted):
    _, canaries, _ = planted
    independent = corpus(300, 99)  # output independent of the input: 0-DP, so any claim holds
    result = audit.text_canary_audit(independent, canaries, delta=1e-5)
    assert abs(result["auc"] - 0.5) < 0.15
    assert result["epsilon_lb"] <= 1.0


def test_text_audit_needs_both_roles(planted):
    _, canaries, planted_corpus = planted
    with pytest.raises(ValueError, match="both"):
        audit.text_canary_audit(planted_corpus, [c for c in canaries if c.member], delta=1e-5)


def test_evaluate_rejects_leaky_text_and_ships_clean_text(planted):
    private, canaries, planted_corpus = planted
    holdout = corpus(200, 5)
    leaky = evaluate(list(planted_corpus), holdout, planted_corpus, canaries=canaries,
                     ledger_epsilon=1.0, ledger_delta=1e-5)
    assert leaky.decision == "reject"
    reasons = " ".join(leaky.report["release_decision"]["reasons"])
    assert "canaries leaked" in reasons and "exceeds the ledger epsilon" in reasons
    assert leaky.report["privacy_audit"]["reads_private_data"] is True
    assert leaky.report["diversity"]["reads_private_data"] is False
    clean = evaluate(corpus(300, 42), holdout, planted_corpus, canaries=canaries,
                     ledger_epsilon=1.0, ledger_delta=1e-5)
    assert clean.report["privacy_audit"]["epsilon_lb"] <= 1.0
    assert clean.report["contamination"]["canaries"]["leaked_members"] == 0
    assert clean.decision == "ship", clean.report["release_decision"]["reasons"]


# ----------------------------------------------------------------------------- table audit


def population(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 2 * x + rng.normal(size=n), "z": rng.uniform(0, 10, n),
                         "c": rng.choice(["a", "b", "c"], n), "label": np.where(x > 0, "pos", "neg")})


def test_tabular_audit_catches_a_copying_generator():
    real = population(400, 0)
    member_mask = np.random.default_rng(1).random(len(real)) < 0.5  # random membership
    private, holdout = real[member_mask], real[~member_mask]
    result = audit.tabular_membership_audit(private.copy(), private, holdout, delta=1e-5)
    assert result["attacks"]["dcr"]["auc"] > 0.95
    assert result["epsilon_lb"] > 2.0


def test_tabular_audit_passes_an_output_independent_of_the_data():
    real = population(400, 0)
    member_mask = np.random.default_rng(1).random(len(real)) < 0.5
    private, holdout = real[member_mask], real[~member_mask]
    fresh = population(300, 77)  # same distribution, no private rows used
    result = audit.tabular_membership_audit(fresh, private, holdout.iloc[:100], delta=1e-5,
                                            reference=holdout.iloc[100:])
    assert set(result["attacks"]) == {"dcr", "density_ratio"}
    assert result["max_auc"] < 0.7
    assert result["epsilon_lb"] <= 1.0


def _metadata():
    return {"columns": {"x": {"type": "numerical", "lower": -4, "upper": 4},
                        "y": {"type": "numerical", "lower": -10, "upper": 10},
                        "z": {"type": "numerical", "lower": 0, "upper": 10},
                        "c": {"type": "categorical", "categories": ["a", "b", "c"]},
                        "label": {"type": "categorical", "categories": ["neg", "pos"]}}}


def test_audit_passes_dpsynth_tabular_at_the_tested_epsilon_and_catches_a_copy():
    tabular = pytest.importorskip("dpsynth.tabular")
    real = population(600, 3)
    member_mask = np.random.default_rng(4).random(len(real)) < 0.5
    private, holdout = real[member_mask].reset_index(drop=True), real[~member_mask].reset_index(drop=True)
    result = tabular.synthesize(private, epsilon=1.0, delta=1e-5, method="independent", rows=300,
                                metadata=_metadata(), seed=0, progress=False)
    epsilon = result.ledger.epsilon_spent
    dp = evaluate(result.data, holdout, private, target="label", ledger=result.ledger, run_sdmetrics=False)
    assert dp.report["privacy_audit"]["epsilon_lb"] <= epsilon
    assert not any("exceeds the ledger epsilon" in r for r in dp.report["release_decision"]["reasons"])
    copy = evaluate(private.copy(), holdout, private, target="label", ledger_epsilon=epsilon,
                    ledger_delta=1e-5, run_sdmetrics=False)
    assert copy.report["privacy_audit"]["epsilon_lb"] > epsilon
    assert copy.decision == "reject"


@pytest.mark.usefixtures("source_key_home", "one_torch_thread")
def test_text_audit_passes_dpsynth_text_generate_at_the_tested_epsilon(tiny_model):
    """The real DP text pipeline (tiny random-weight model) stays below its ledger epsilon."""
    from dpsynth.text import generate

    private = corpus(60, 11)
    canaries = contam.make_canaries(private, 100, seed=12, prefix_words=4, repetitions=2)
    planted = contam.plant_canaries(private, canaries, seed=13)
    result = generate(planted, epsilon=1.0, delta=1e-6, group_size=4, max_new_tokens=8, num_texts=12,
                      model=tiny_model, progress=False)
    assert len(result.texts) == 12
    scan = contam.scan_for_canaries(result.texts, canaries)
    assert scan["leaked_members"] == 0
    claim = result.ledger.epsilon_spent
    report = audit.text_canary_audit(result.texts, canaries, delta=result.ledger.delta_spent, claimed_epsilon=claim)
    assert report["group_size"] == 2 and report["epsilon_lb"] <= claim
    # and the same canaries are caught when the "generator" returns its input verbatim
    caught = audit.text_canary_audit(planted, canaries, delta=1e-6, claimed_epsilon=claim)
    assert caught["epsilon_lb"] > claim and caught["epsilon_lb_group"] == pytest.approx(2 * caught["epsilon_lb"])


def test_repeated_canaries_are_audited_as_groups_and_a_correct_mechanism_is_not_refuted():
    """Randomized response that is exactly epsilon-DP per copy, each member planted r = 4 times:
    the datasets differ in 4 records, so the attack may reach 4 epsilon. Read per record (group
    delta under the claim, divided by r) the bound stays at or below the claim; read naively (as
    one record) it would 'refute' a correct mechanism."""
    epsilon, r, n = 1.0, 4, 500
    rng = np.random.default_rng(0)
    p_keep = math.exp(epsilon) / (1 + math.exp(epsilon))
    # a member's score: the number of its r copies answered "present" (each copy epsilon-DP)
    members = rng.binomial(r, p_keep, size=n).astype(float)
    others = rng.binomial(r, 1 - p_keep, size=n).astype(float)
    naive = audit.summarise_attack(members, others, delta=1e-6)
    assert naive["epsilon_lb"] > epsilon  # the wrong reading
    grouped = audit.summarise_group_attack(members, others, 1e-6, r, claimed_epsilon=epsilon)
    assert grouped["epsilon_lb"] <= epsilon and grouped["group_size"] == r
    assert grouped["epsilon_lb_group"] == pytest.approx(r * grouped["epsilon_lb"])
    # the group's delta is used, not only the division by r: with a large delta it lowers the bound
    at_group_delta = audit.summarise_group_attack(members, others, 1e-3, r, claimed_epsilon=epsilon)
    divided_only = audit.summarise_attack(members, others, delta=1e-3)["epsilon_lb"] / r
    assert at_group_delta["group_delta"] == pytest.approx(r * math.exp((r - 1) * epsilon) * 1e-3)
    assert at_group_delta["epsilon_lb"] < divided_only - 1e-3
    unknown = audit.summarise_group_attack(members, others, 1e-6, r, claimed_epsilon=None)
    assert unknown["epsilon_lb"] is None  # no claim: no per-record bound is made up
    with pytest.raises(audit.EvaluationInputError, match="same number of times"):
        mixed = contam.make_canaries(["a b c d e f"], 4, seed=1) + contam.make_canaries(["a b c d"], 2, seed=2,
                                                                                       repetitions=2)
        audit.text_canary_audit(["x y z"], mixed, delta=1e-6, claimed_epsilon=1.0)


def test_audit_reports_its_ceiling_and_the_decision_notes_weak_audits():
    from dpsynth.evaluate import decide

    small = audit.summarise_attack(np.ones(30), np.zeros(30), delta=1e-6)
    assert small["epsilon_lb"] == pytest.approx(small["epsilon_lb_ceiling"])  # perfect attack hits it
    assert 2.0 < small["epsilon_lb_ceiling"] < 3.0
    big = audit.summarise_attack(np.ones(300), np.zeros(300), delta=1e-6)
    assert big["epsilon_lb_ceiling"] > small["epsilon_lb_ceiling"]
    out = decide({"privacy_audit": {"epsilon_lb": 0.0, "epsilon_lb_ceiling": 2.4}}, ledger_epsilon=4.0)
    assert out["decision"] == "ship" and "too small to refute" in out["notes"][0]
    assert decide({"privacy_audit": {"epsilon_lb": 0.0, "epsilon_lb_ceiling": 5.0}}, 4.0)["notes"] == []
