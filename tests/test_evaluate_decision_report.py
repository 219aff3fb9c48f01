"""Release-decision rules, the offline HTML report, and the mixing helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.evaluate import DecisionThresholds, decide
from dpsynth.evaluate.mix import mix_frames, mix_records, synthetic_count, validate_ratio
from dpsynth.evaluate.report import bar_chart_svg, render_html, scatter_svg


def good_report(**overrides):
    report = {
        "kind": "table",
        "privacy_audit": {"epsilon_lb": 0.2},
        "contamination": {"exact_overlap_private": {"rate": 0.0}, "exact_overlap_holdout": {"rate": 0.0}},
        "utility": {"tstr": {"tstr": 0.9, "trtr": 0.95, "ratio": 0.95},
                    "ablation": {"gain_dev": 0.01, "gain_holdout": 0.01}},
        "fidelity": {"marginals": {"3way": {"mean": 0.2, "excess_mean": 0.05}}},
    }
    for path, value in overrides.items():
        node = report
        keys = path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return report


def test_good_evidence_ships():
    out = decide(good_report(), ledger_epsilon=1.0)
    assert out["decision"] == "ship" and out["reasons"] == []
    assert out["thresholds"]["min_utility_ratio"] == DecisionThresholds().min_utility_ratio


@pytest.mark.parametrize("epsilon", [None, math.inf])
def test_no_finite_privacy_claim_rejects(epsilon):
    assert decide(good_report(), ledger_epsilon=epsilon)["decision"] == "reject"


def test_audit_above_ledger_epsilon_rejects():
    out = decide(good_report(**{"privacy_audit.epsilon_lb": 1.5}), ledger_epsilon=1.0)
    assert out["decision"] == "reject" and "exceeds the ledger epsilon" in out["reasons"][0]
    assert decide(good_report(**{"privacy_audit.epsilon_lb": 0.99}), 1.0)["decision"] == "ship"


def test_gain_that_vanishes_on_the_holdout_rejects():
    out = decide(good_report(**{"utility.ablation.gain_dev": 0.05, "utility.ablation.gain_holdout": -0.01}), 1.0)
    assert out["decision"] == "reject" and "vanishes on the holdout" in " ".join(out["reasons"])
    # no gain anywhere is not a "vanishing" gain
    flat = decide(good_report(**{"utility.ablation.gain_dev": 0.0, "utility.ablation.gain_holdout": 0.0}), 1.0)
    assert flat["decision"] == "ship"


def test_copies_and_canaries_reject_tables_relative_to_holdout_baseline():
    leak = good_report(**{"contamination.canaries": {"leaked_members": 2}})
    assert decide(leak, 1.0)["decision"] == "reject"
    # 3% exact matches with private rows but 2.5% with the holdout: small categorical domains, not copying
    natural = good_report(**{"contamination.exact_overlap_private.rate": 0.03,
                             "contamination.exact_overlap_holdout.rate": 0.025})
    assert decide(natural, 1.0)["decision"] == "ship"
    copying = good_report(**{"contamination.exact_overlap_private.rate": 0.5})
    assert decide(copying, 1.0)["decision"] == "reject"


def test_poor_utility_or_collapse_regenerates():
    assert decide(good_report(**{"utility.tstr.ratio": 0.5}), 1.0)["decision"] == "regenerate"
    assert decide(good_report(**{"fidelity.marginals.3way.excess_mean": 0.4}), 1.0)["decision"] == "regenerate"
    text = {"kind": "text", "privacy_audit": {"epsilon_lb": 0.0}, "diversity": {"self_bleu": 0.99},
            "distribution_shift": {"embedding_coverage": 0.9, "mauve": 0.9}}
    out = decide(text, 1.0)
    assert out["decision"] == "regenerate" and "self_bleu" in out["reasons"][0]
    text["diversity"]["self_bleu"] = 0.3
    text["distribution_shift"]["embedding_coverage"] = 0.05
    assert decide(text, 1.0)["decision"] == "regenerate"
    custom = DecisionThresholds(min_coverage=0.01)
    assert decide(text, 1.0, custom)["decision"] == "ship"


# ----------------------------------------------------------------------------- report


def test_html_report_is_self_contained_and_escaped():
    report = good_report()
    report["release_decision"] = decide(report, 1.0)
    report["notice"] = "do not publish"
    report["fidelity"]["reads_private_data"] = True
    report["fidelity"]["sources"] = ["real_holdout"]
    plots = {"marginals": {"<script>alert(1)</script>": {"labels": ["a", "b"], "real": [0.5, 0.5],
                                                         "synthetic": [0.9, 0.1]}},
             "embedding_2d": {"real": [[0, 0], [1, 1]], "synthetic": [[0.5, 0.5]], "coverage": 0.5}}
    page = render_html(report, plots)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 2
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "ship" in page and "not for publication" in page


def test_svg_bars_scale_to_values():
    svg = bar_chart_svg("col", ["a", "b"], [1.0, 0.0], [0.5, 0.5], height=220)
    heights = [float(h) for h in __import__("re").findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"', svg)]
    assert heights[:4] == [150.0, 75.0, 0.0, 75.0]
    assert scatter_svg("s", [[0, 0]], [[1, 1]]).count("<circle") == 2


# ----------------------------------------------------------------------------- mixing


def test_mix_ratio_arithmetic_and_validation():
    assert synthetic_count(100, 0.5) == 100
    assert synthetic_count(100, 0.0) == 0
    assert synthetic_count(90, 0.25) == 30
    for bad in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ValueError):
            validate_ratio(bad)


def test_mix_frames_keeps_all_real_rows_and_marks_sources():
    real = pd.DataFrame({"a": range(10), "b": list("abcdefghij")})
    synth = pd.DataFrame({"b": list("z" * 30), "a": range(100, 130)})
    hybrid = mix_frames(real, synth, 0.75, seed=0, source_column="source")
    assert len(hybrid) == 40 and list(hybrid.columns) == ["a", "b", "source"]
    assert (hybrid["source"] == "real").sum() == 10
    assert set(hybrid.loc[hybrid.source == "real", "a"]) == set(range(10))
    assert hybrid.loc[hybrid.source == "synthetic", "a"].is_unique  # without replacement
    with pytest.raises(ValueError, match="column mismatch"):
        mix_frames(real, synth.rename(columns={"a": "q"}), 0.5)
    with pytest.raises(ValueError, match="need 90"):
        mix_frames(real, synth, 0.9)
    assert len(mix_frames(real, synth, 0.9, replace=True)) == 100


def test_mix_records_is_seeded():
    real, synth = [f"r{i}" for i in range(20)], [f"s{i}" for i in range(20)]
    a = mix_records(real, synth, 0.5, seed=3)
    assert a == mix_records(real, synth, 0.5, seed=3)
    assert sorted(x for x in a if x.startswith("r")) == sorted(real)
    assert np.sum([x.startswith("s") for x in a]) == 20


# ------------------------------------------------------------------------------------------
# Every reason is marked with the data it read (issue 8 §5)
# ------------------------------------------------------------------------------------------


def _bad_everything_report():
    return good_report(**{
        "privacy_audit.epsilon_lb": 2.0, "privacy_audit.epsilon_lb_ceiling": 0.5,
        "privacy_audit.sources": ["private", "real_holdout"],
        "contamination.exact_overlap_private.rate": 0.5, "contamination.benchmark_exact.rate": 0.5,
        "contamination.canaries.leaked_members": 2,
        "utility.tstr.ratio": 0.1, "utility.ablation.gain_dev": 0.2, "utility.ablation.gain_holdout": -0.1,
        "fidelity.marginals.3way.excess_mean": 0.9, "diversity.self_bleu": 0.99,
    })


def test_every_decision_reason_is_marked_with_its_sources():
    out = decide(_bad_everything_report(), ledger_epsilon=1.0)
    findings = {f["rule"]: f for f in out["findings"]}
    assert [f["reason"] for f in out["findings"]] == out["reasons"]  # same order, same text
    expected = {  # rule -> (reads_private_data, reads_holdout_data, sources that must be listed)
        "audit_epsilon_lb": (True, True, {"private", "real_holdout", "ledger"}),
        "canaries_leaked": (True, False, {"canaries"}),
        "exact_overlap_private": (True, True, {"private", "real_holdout"}),  # the holdout baseline
        "benchmark_exact": (False, False, {"benchmark"}),
        "gain_vanishes_on_holdout": (True, True, {"private", "real_holdout"}),
        "tstr_trtr_ratio": (True, True, {"private", "real_holdout"}),
        "tvd_3way": (True, True, {"real_holdout"}),
        "self_bleu": (False, False, {"synthetic"}),
    }
    assert set(findings) == set(expected)
    for rule, (private, holdout, sources) in expected.items():
        f = findings[rule]
        assert (f["reads_private_data"], f["reads_holdout_data"]) == (private, holdout), rule
        assert sources <= set(f["sources"]), rule
    assert out["decision"] == "reject" and findings["self_bleu"]["outcome"] == "regenerate"
    note = out["note_findings"][0]
    assert note["rule"] == "audit_too_small" and note["reads_private_data"] and out["notes"] == [note["reason"]]
    no_claim = decide(good_report(), ledger_epsilon=None)["findings"][0]
    assert no_claim["rule"] == "no_privacy_claim" and no_claim["sources"] == ["ledger"]
    assert not no_claim["reads_private_data"]


def test_card_evals_carry_marked_reasons_and_never_a_bare_number():
    from dpsynth.evaluate import card_evals

    report = _bad_everything_report()
    report["release_decision"] = decide(report, ledger_epsilon=1.0)
    evals = card_evals(report)
    reasons = evals["release_decision_reasons"]
    assert len(reasons) == len(report["release_decision"]["reasons"]) > 0
    for reason in reasons:
        assert isinstance(reason, dict) and isinstance(reason["reads_private_data"], bool)
        assert isinstance(reason["reads_holdout_data"], bool) and reason["sources"]
    assert evals["release_decision_evidence"]["reads_private_data"] is True
    assert evals["release_decision_evidence"]["reads_holdout_data"] is True
    assert evals["real_holdout"]["reads_holdout_data"] is True
    assert evals["privacy_audit"]["reads_private_data"] is True
    # a report written before reasons were marked gets them marked from its own thresholds
    old = dict(report)
    old["release_decision"] = {k: v for k, v in report["release_decision"].items()
                               if k not in ("findings", "note_findings")}
    assert card_evals(old)["release_decision_reasons"] == reasons


def test_html_report_tags_each_reason_with_what_it_read():
    report = _bad_everything_report()
    report["release_decision"] = decide(report, 1.0)
    page = render_html(report)
    items = page.split("<ul>", 1)[1].split("</ul>", 1)[0].split("<li>")[1:]
    assert len(items) == len(report["release_decision"]["reasons"])
    by_text = {item.split(" <span", 1)[0]: item for item in items}
    self_bleu = next(v for k, v in by_text.items() if k.startswith("self_bleu"))
    audit = next(v for k, v in by_text.items() if "exceeds the ledger epsilon" in k)
    assert "publishable" in self_bleu and "not for publication" not in self_bleu
    assert "not for publication" in audit and "real_holdout" in audit
