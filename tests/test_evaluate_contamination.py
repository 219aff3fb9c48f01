"""Canary planting/scanning and exact / near-duplicate overlap on known cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.evaluate import contamination as contam


WORDS = "the a patient reported mild severe pain after surgery since monday with fever cough".split()


def corpus(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 10)) for _ in range(n)]


def test_make_canaries_roles_prefixes_and_unique_suffixes():
    source = corpus(50, 0)
    canaries = contam.make_canaries(source, 400, seed=1, prefix_words=4, repetitions=2)
    assert len(canaries) == 400
    assert len({c.suffix for c in canaries}) == 400
    members = sum(c.member for c in canaries)
    assert 160 < members < 240  # fair coin per canary
    prefixes = {" ".join(t.split()[:4]) for t in source}
    assert all(c.prefix in prefixes for c in canaries)
    assert all(any(ch.isdigit() for ch in c.suffix) for c in canaries)


def test_plant_inserts_only_members_with_repetitions():
    source = corpus(30, 0)
    canaries = contam.make_canaries(source, 20, seed=2, repetitions=3)
    planted = contam.plant_canaries(source, canaries, seed=0)
    n_members = sum(c.member for c in canaries)
    assert len(planted) == len(source) + 3 * n_members
    for c in canaries:
        assert planted.count(c.text) == (3 if c.member else 0)


def test_scan_finds_planted_canaries_in_a_copying_generator_only():
    source = corpus(100, 0)
    canaries = contam.make_canaries(source, 40, seed=3)
    planted = contam.plant_canaries(source, canaries, seed=1)
    leaky = contam.scan_for_canaries([t.upper() + "  " for t in planted], canaries)  # case/space-insensitive
    assert leaky["leaked_members"] == leaky["planted"] == sum(c.member for c in canaries)
    assert leaky["leaked_non_members"] == 0
    clean = contam.scan_for_canaries(corpus(100, 9), canaries)
    assert clean["leaked_members"] == 0 and clean["leaked_ids"] == []


def test_canary_file_round_trip_and_malformed_file(tmp_path):
    canaries = contam.make_canaries(corpus(10, 0), 5, seed=0)
    path = tmp_path / "canaries.json"
    contam.save_canaries(path, canaries)
    assert contam.load_canaries(path) == canaries
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"prefix\": 1}]")
    with pytest.raises(ValueError, match="cannot read canary file"):
        contam.load_canaries(bad)


def test_exact_overlap_known_rate():
    records = ["Hello  World", "another record"]
    outputs = ["hello world", "something else", "ANOTHER record", "new"]
    out = contam.exact_overlap(outputs, records)
    assert out["rate"] == pytest.approx(0.5) and out["indices"] == [0, 2]
    with pytest.raises(ValueError):
        contam.exact_overlap([], records)


def test_near_duplicates_catch_light_edits_not_unrelated_text():
    records = ["the patient reported severe chest pain after the surgery on monday morning"]
    edited = "the patient reported severe chest pain after the surgery on tuesday morning"
    unrelated = "quarterly revenue grew by eleven percent in the northern region"
    sims = contam.max_jaccard([records[0], edited, unrelated], records)
    assert sims[0] == pytest.approx(1.0)
    assert sims[1] > 0.6 and sims[2] < 0.1
    found = contam.near_duplicates([edited, unrelated], records, threshold=0.6)
    assert found["count"] == 1 and found["indices"] == [0]


def test_exact_row_overlap_tables():
    real = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    synth = pd.DataFrame({"a": [1, 2, 9, 3], "b": ["x", "q", "z", "z"]})
    out = contam.exact_row_overlap(synth, real)
    assert out["count"] == 2 and out["rate"] == pytest.approx(0.5)


def test_evaluate_flags_benchmark_contamination_and_near_copies_of_private_texts():
    from dpsynth.evaluate import evaluate

    private = corpus(80, 1)
    holdout = corpus(80, 2)
    benchmark = [f"benchmark question {i}: what is the capital of country number {i}?" for i in range(20)]
    clean = corpus(60, 3)
    contaminated = clean[:50] + benchmark[:10]
    result = evaluate(contaminated, holdout, private, benchmark=benchmark, ledger_epsilon=1.0, ledger_delta=1e-6)
    assert result.report["contamination"]["benchmark_exact"]["count"] == 10
    assert result.report["contamination"]["reads_private_data"] is True
    assert result.decision == "reject"
    assert any(r.startswith("benchmark_exact") for r in result.report["release_decision"]["reasons"])
    edited = [t + " ok" for t in private[:30]] + clean[:30]  # light edits of private records
    near = evaluate(edited, holdout, private, ledger_epsilon=1.0, ledger_delta=1e-6)
    assert near.report["contamination"]["exact_overlap_private"]["count"] == 0
    assert near.report["contamination"]["near_duplicates_private"]["count"] >= 25
    assert near.decision == "reject"


def test_the_canary_file_is_private_to_its_owner(tmp_path):
    import os
    import stat

    canaries = contam.make_canaries(corpus(10, 0), 6, seed=4)
    old = os.umask(0o022)  # a usual umask would give 0644 to a plain write
    try:
        contam.save_canaries(tmp_path / "canaries.json", canaries)
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "canaries.json").stat().st_mode)
    assert mode == 0o600
    assert contam.load_canaries(tmp_path / "canaries.json") == canaries
    assert [p.name for p in tmp_path.iterdir()] == ["canaries.json"]  # no temp file left
