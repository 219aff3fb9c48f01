"""Private Evolution (method="pe"): sensitivity, calibration, data flow, refusals, end to end."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from scipy.stats import norm

from dpsynth.accounting import BudgetExceededError, Ledger, PrivacyBudget
from dpsynth.text import generate
from dpsynth.text.pe.evolution import run_private_evolution
from dpsynth.text.pe.generator import EngineGenerator, batch_order, message_ids
from dpsynth.text.pe.histogram import (
    VOTE_SPACES,
    nearest_candidates,
    noisy_histogram,
    select_proportional,
    select_top,
    threshold_counts,
    vote_histogram,
)
from dpsynth.text.pe.privacy import calibrate_pe, pe_event
from dpsynth.text.pe.variation import VariationPlan, has_blank, initial_message, mask_words, tidy
from dpsynth.text.privacy import PRIVACY_UNIT
from tests.tiny_model import build_tiny_model_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hashing_embed(texts):
    """A deterministic offline embedder (character 3-grams hashed into 256 dims)."""
    out = np.zeros((len(texts), 256))
    for row, text in enumerate(texts):
        padded = f"  {text.lower()}  "
        for i in range(len(padded) - 2):
            out[row, hash(padded[i:i + 3]) % 256] += 1.0
    return out


SECRET = "zqxjv"
PRIVATE = [f"{SECRET}{i} the patient went home after rest and fluids" for i in range(12)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny_pe"))
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path), path


# ---------------------------------------------------------------------------------------------
# The vote histogram and its sensitivity


@pytest.mark.parametrize("space", VOTE_SPACES)
@pytest.mark.parametrize("seed", range(20))
def test_adding_one_text_changes_exactly_one_count_by_one(seed, space):
    rng = np.random.default_rng(seed)
    n, m, d, k = 30, 12, 8, 3
    private = rng.normal(size=(n + 1, d))
    private_groups = rng.integers(0, k, size=n + 1)
    candidates = rng.normal(size=(m, d))
    candidate_groups = np.arange(m) % k

    def votes(rows):
        return vote_histogram(nearest_candidates(private[rows], private_groups[rows], candidates, candidate_groups,
                                                 space), m)

    without, with_one = votes(np.arange(n)), votes(np.arange(n + 1))
    diff = with_one - without
    assert np.count_nonzero(diff) == 1 and diff.sum() == 1 and diff.max() == 1
    assert np.linalg.norm(diff) == 1.0  # L2 sensitivity 1
    # the new vote went to a candidate of the new text's own label (labels are disjoint)
    assert candidate_groups[int(np.flatnonzero(diff)[0])] == private_groups[n]
    # removing any text changes exactly one count by one as well
    drop = int(rng.integers(0, n))
    keep = np.delete(np.arange(n), drop)
    removed = votes(keep)
    assert np.abs(without - removed).sum() == 1


def _reference_centred_votes(private, private_groups, candidates, candidate_groups):
    """Independent re-statement of the centred vote: per label, subtract the mean of the unit
    candidate embeddings from the unit private and candidate embeddings, then the largest cosine."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    out = []
    for x, g in zip(unit(private), private_groups):
        cols = np.flatnonzero(candidate_groups == g)
        c = unit(candidates[cols])
        mean = c.mean(0)
        cos = [float(np.dot(x - mean, v - mean) / (np.linalg.norm(x - mean) * np.linalg.norm(v - mean))) for v in c]
        out.append(int(cols[int(np.argmax(cos))]))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_centred_votes_match_an_independent_computation(seed):
    rng = np.random.default_rng(seed)
    private, private_groups = rng.normal(size=(40, 6)), rng.integers(0, 2, size=40)
    candidates, candidate_groups = rng.normal(size=(10, 6)) * rng.uniform(0.5, 3, size=(10, 1)), np.arange(10) % 2
    expected = _reference_centred_votes(private, private_groups, candidates, candidate_groups)
    assert nearest_candidates(private, private_groups, candidates, candidate_groups).tolist() == expected
    assert nearest_candidates(private, private_groups, candidates, candidate_groups, "centred").tolist() == expected


def test_centring_stops_a_hub_candidate_taking_every_vote():
    # every candidate shares the public model's "style" direction e0; the private texts lack it and
    # differ along e1/e2. Raw cosine sends all of them to the plainest candidate (a hub); centred
    # cosine sends each to the candidate that departs from the pool in its own direction.
    style = np.array([3.0, 0.0, 0.0])
    candidates = np.stack([style, style + [0, 2, 0], style + [0, 0, 2], style + [0, -2, -2]])  # 0: the hub
    private = np.array([[1.0, 0.3, 0.0], [1.0, 0.0, 0.3], [1.0, -0.2, -0.2]])
    groups_c, groups_p = np.zeros(4, dtype=int), np.zeros(3, dtype=int)
    assert nearest_candidates(private, groups_p, candidates, groups_c, "raw").tolist() == [0, 0, 0]
    assert nearest_candidates(private, groups_p, candidates, groups_c, "centred").tolist() == [1, 2, 3]


def test_an_unknown_vote_space_is_refused():
    with pytest.raises(ValueError, match="vote space"):
        nearest_candidates(np.ones((1, 2)), np.zeros(1), np.ones((1, 2)), np.zeros(1), "whitened")


def test_votes_stay_inside_their_label_and_ties_go_to_the_lowest_index():
    candidates = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    candidate_groups = np.array([0, 0, 1, 1])
    private = np.array([[1.0, 0.0], [1.0, 0.01]])
    nearest = nearest_candidates(private, np.array([0, 1]), candidates, candidate_groups)
    assert nearest.tolist() == [0, 3]  # tie 0/1 -> 0; label 1 text cannot vote for label 0's candidates
    assert nearest_candidates(private, np.array([2, 2]), candidates, candidate_groups).tolist() == [-1, -1]


def test_noise_is_gaussian_with_the_planned_standard_deviation():
    rng = np.random.default_rng(7)
    counts = np.full(40_000, 5.0)
    noisy = noisy_histogram(counts, 3.0, rng)
    assert abs(noisy.mean() - 5.0) < 0.05
    assert abs(noisy.std() - 3.0) < 0.05
    with pytest.raises(ValueError):
        noisy_histogram(counts, 0.0, rng)


def test_threshold_and_selection_follow_the_noisy_counts():
    weights = threshold_counts(np.array([-1.0, 0.5, 3.0, 1.0, 10.0]), 1.0)
    assert weights.tolist() == [0.0, 0.0, 3.0, 1.0, 10.0]
    groups = np.zeros(5, dtype=np.int64)
    rng = np.random.default_rng(0)
    drawn = select_proportional(weights, groups, {0: 28_000}, rng)
    freq = np.bincount(drawn, minlength=5) / drawn.size
    assert freq[:2].sum() == 0
    np.testing.assert_allclose(freq[2:], np.array([3, 1, 10]) / 14, atol=0.01)
    assert select_top(weights, groups, {0: 2}, rng).tolist() == [4, 2]
    # all counts below the threshold: uniform over that label's candidates (public fallback)
    uniform = select_proportional(np.zeros(4), np.array([0, 0, 1, 1]), {1: 4000}, rng)
    assert set(uniform.tolist()) == {2, 3}


# ---------------------------------------------------------------------------------------------
# Calibration, re-checked against dp-accounting directly


def _gaussian_dp_delta(epsilon: float, sigma: float, iterations: int) -> float:
    """Exact delta(epsilon) of T composed Gaussians (mu-GDP with mu = sqrt(T)/sigma; Dong et al.)."""
    mu = math.sqrt(iterations) / sigma
    return float(norm.cdf(-epsilon / mu + mu / 2) - math.exp(epsilon) * norm.cdf(-epsilon / mu - mu / 2))


@pytest.mark.parametrize("epsilon,delta,iterations", [(1.0, 1e-6, 3), (3.0, 1e-6, 5), (10.0, 1e-5, 10), (3.0, 1e-6, 1)])
def test_sigma_calibration_matches_independent_accounting(epsilon, delta, iterations):
    plan = calibrate_pe(epsilon, delta, iterations)
    sigma = plan.noise_multiplier
    # independent 1: the exact Gaussian-DP tradeoff (the accounting Aug-PE uses)
    assert _gaussian_dp_delta(epsilon, sigma, iterations) <= delta * 1.001
    assert _gaussian_dp_delta(epsilon, sigma * 0.98, iterations) > delta  # and sigma is not wasteful
    # independent 2: dp_accounting's PLD and RDP accountants on the composed event, built here
    event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), iterations)
    pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4).compose(event)
    assert pld.get_epsilon(delta) <= epsilon * 1.001
    rdp = rdp_privacy_accountant.RdpAccountant().compose(event)
    assert rdp.get_epsilon(delta) >= pld.get_epsilon(delta) * 0.999  # RDP is the looser bound
    assert plan.event == event == pe_event(sigma, iterations)
    assert plan.threshold == pytest.approx(2 * sigma)


def test_more_iterations_or_less_epsilon_need_more_noise():
    assert calibrate_pe(3.0, 1e-6, 5).noise_multiplier > calibrate_pe(3.0, 1e-6, 2).noise_multiplier
    assert calibrate_pe(1.0, 1e-6, 3).noise_multiplier > calibrate_pe(3.0, 1e-6, 3).noise_multiplier
    for bad in [dict(iterations=0), dict(delta=0.0), dict(epsilon=-1.0)]:
        kwargs = dict(epsilon=3.0, delta=1e-6, iterations=3) | bad
        with pytest.raises(ValueError):
            calibrate_pe(**kwargs)


# ---------------------------------------------------------------------------------------------
# The loop: what the generator sees, and that votes steer the selection


class RecordingGenerator:
    """A fake public model: records every prompt, answers from a fixed public pool."""

    def __init__(self, pool):
        self.pool = list(pool)
        self.prompts: list[str] = []
        self.keyed: list[tuple[str, object]] = []  # (prompt, its batch key) of calls that passed keys
        self.calls = 0

    def __call__(self, messages, description="", batch_keys=None):
        self.prompts.extend(messages)
        if batch_keys is not None:
            assert len(batch_keys) == len(messages)
            self.keyed.extend(zip(messages, batch_keys))
        out = [self.pool[(self.calls + i) % len(self.pool)] for i in range(len(messages))]
        self.calls += len(messages)
        return out


def _evolve(private_texts, private_groups, labels, per_label, generator, epsilon=50.0, iterations=2, seed=0,
            **options):
    plan = calibrate_pe(epsilon, 1e-6, iterations)
    return run_private_evolution(
        private_embeddings=hashing_embed(private_texts),
        private_groups=np.asarray(private_groups),
        labels=labels,
        outputs_per_label=per_label,
        plan=plan,
        variations=2,
        instruction="Write a short note.",
        generate=generator,
        embed=hashing_embed,
        rng=np.random.default_rng(seed),
        **options,
    )


def test_no_private_text_reaches_the_generator():
    pool = ["a sunny day at the beach", "the train was late again", "fresh bread from the bakery"]
    generator = RecordingGenerator(pool)
    texts, groups, trace = _evolve(PRIVATE, [0] * 6 + [1] * 6, ["pos", "neg"], {0: 2, 1: 3}, generator)
    assert generator.prompts
    assert not any(SECRET in prompt for prompt in generator.prompts)
    for prompt in generator.prompts:  # every prompt is the instruction + label + (public) candidate
        assert prompt.startswith("Write a short note.\nThe text must be ")
    assert groups == [0, 0, 1, 1, 1] and all(t in pool for t in texts)
    assert len(trace.population_sizes) == 2


def test_variation_batch_keys_are_each_prompts_public_label_and_kind():
    pool = ["a sunny day at the beach", "the train was late again", "fresh bread from the bakery"]
    generator = RecordingGenerator(pool)
    _evolve(PRIVATE, [0] * 6 + [1] * 6, ["pos", "neg"], {0: 2, 1: 3}, generator)
    assert len(generator.keyed) == (2 + 3) * 2  # the variation call passes keys; the initial call does not
    for prompt, (label, kind) in generator.keyed:
        assert f"The text must be {label}." in prompt
        assert kind in ("paraphrase", "fill_in")
        assert ("Rephrase" in prompt) == (kind == "paraphrase") and ("Fill in" in prompt) == (kind == "fill_in")


def test_batch_order_groups_by_key_then_shortest_first_and_keeps_ties_in_order():
    rows = [[1] * 5, [1] * 2, [1] * 3, [1] * 2, [1] * 1, [1] * 4]
    keys = ["b", "a", "b", "a", "b", None]
    assert batch_order(rows, keys) == [4, 2, 0, 1, 3, 5]  # keys in first-appearance order
    assert batch_order(rows) == [4, 1, 3, 2, 5, 0]  # no keys: a stable length sort
    assert batch_order([], []) == []
    with pytest.raises(ValueError, match="batch keys"):
        batch_order(rows, keys[:2])


def test_engine_generator_decodes_in_batch_order_and_answers_in_input_order(tiny):
    from types import SimpleNamespace

    model, tokenizer, _ = tiny
    messages = ["Write a longer note about the weather today.", "Hi.", "Write a note.", "Hello there.", "Ok."]
    keys = ["x", "y", "x", "y", "x"]
    seen = []

    def echo(groups, settings):  # a fake decoder that "generates" each prompt's own tokens
        seen.extend(list(g.public_ids) for g in groups)
        return [list(g.public_ids) for g in groups]

    generate = EngineGenerator(SimpleNamespace(model=model, tokenizer=tokenizer), max_new_tokens=4, temperature=1.0,
                               top_k=5, max_rows=4, progress=False, decode=echo)
    rows = [message_ids(tokenizer, m) for m in messages]
    assert seen == [] and generate(messages, batch_keys=keys) == [
        tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows
    ]
    assert seen == [rows[i] for i in batch_order(rows, keys)] != rows


def test_example_variations_show_public_candidates_only():
    pool = ["a sunny day at the beach", "the train was late again", "fresh bread from the bakery"]
    generator = RecordingGenerator(pool)
    _evolve(PRIVATE, [0] * 6 + [1] * 6, ["pos", "neg"], {0: 2, 1: 3}, generator, variation_kinds=("example",))
    variations = [p for p in generator.prompts if "Here is an example:" in p]
    assert len(variations) == (2 + 3) * 2  # every kept candidate's V = 2 variations, one iteration
    assert not any(SECRET in p for p in generator.prompts)
    assert all(any(f"example:\n{c}\n" in p for c in pool) for p in variations)


def test_votes_steer_the_selection_toward_the_private_distribution():
    pool = ["alpha beta gamma", "the patient went home after rest", "stock prices fell sharply today",
            "a recipe for lemon cake"]
    hits = 0
    for seed in range(10):
        generator = RecordingGenerator(pool)
        texts, _, _ = _evolve(PRIVATE * 5, [0] * 60, [None], {0: 2}, generator, epsilon=20.0, seed=seed)
        hits += "patient" in texts[0]  # the highest noisy count comes first
    assert hits >= 9  # chance would be about 1 in 4 (one of four pool texts)


def test_variation_prompts_use_only_public_candidates():
    rng = np.random.default_rng(0)
    prompts, source, kinds = VariationPlan("Write a review.").messages(["good food here", "bad"], ["pos", None], 2, rng)
    assert len(prompts) == 4 and source == [0, 0, 1, 1]
    assert kinds == ["paraphrase", "fill_in", "paraphrase", "fill_in"]
    assert "Rephrase" in prompts[0] and "Fill in the blanks" in prompts[1]
    assert "The text must be pos." in prompts[0] and "must be" not in prompts[2]
    assert "_" in mask_words("one two three four", 0.5, rng)
    assert "The text must be neg." in initial_message("Write.", "neg")


def test_variation_kinds_cycle_per_candidate_and_unknown_kinds_are_refused():
    rng = np.random.default_rng(0)
    plan = VariationPlan("Write a review.", kinds=("example", "paraphrase"))
    prompts, source, kinds = plan.messages(["good food here"], ["pos"], 3, rng)
    assert source == [0, 0, 0] and kinds == ["example", "paraphrase", "example"]
    assert "Here is an example:\ngood food here" in prompts[0] and "Write another one like it" in prompts[0]
    assert "Rephrase" in prompts[1] and "Here is an example" in prompts[2]
    assert all("The text must be pos." in p for p in prompts)
    for bad in ((), ("summarise",)):
        with pytest.raises(ValueError, match="variation kinds"):
            VariationPlan("Write.", kinds=bad)


@pytest.mark.parametrize(
    "generated, expected",
    [
        ("The film is great. But the ending is", "The film is great."),  # cut at the token limit
        ('He said "wow." And then the', 'He said "wow."'),
        ("  A fine film.  ", "A fine film."),  # a finished sentence is kept whole
        ("Great. It", "Great. It"),  # trimming would leave fewer than 3 words
        ("Mr. Smith is good and", "Mr. Smith is good and"),
        ("no sentence end at all", "no sentence end at all"),
    ],
)
def test_tidy_cuts_a_text_stopped_mid_sentence_after_its_last_sentence(generated, expected):
    assert tidy(generated) == expected


def test_blank_answers_and_cut_texts_never_enter_the_population():
    """A fill-in answer that kept a blank falls back to the candidate it varied; texts cut by the
    token limit are trimmed to their last sentence -- in every population the loop observes."""
    pool = ["a walk in the park. And then", "the _ was late again.", "fresh bread from the bakery."]
    seen: list[str] = []
    texts, _, _ = run_private_evolution(
        private_embeddings=hashing_embed(PRIVATE), private_groups=np.zeros(len(PRIVATE), dtype=np.int64),
        labels=[None], outputs_per_label={0: 2}, plan=calibrate_pe(50.0, 1e-6, 3), variations=2,
        instruction="Write a short note.", generate=RecordingGenerator(pool), embed=hashing_embed,
        rng=np.random.default_rng(0), observe=lambda _t, population, _g, _w: seen.extend(population),
    )
    assert seen and not any(has_blank(t) for t in seen)
    assert "a walk in the park." in seen and not any(t.endswith("And then") for t in seen)
    assert all(t in seen for t in texts)


def test_initial_population_size_is_the_public_setting():
    sizes = []
    run_private_evolution(
        private_embeddings=hashing_embed(PRIVATE), private_groups=np.asarray([0] * 6 + [1] * 6),
        labels=["pos", "neg"], outputs_per_label={0: 2, 1: 3}, plan=calibrate_pe(50.0, 1e-6, 1), variations=2,
        instruction="Write.", generate=RecordingGenerator(["x y z.", "u v w."]), embed=hashing_embed,
        rng=np.random.default_rng(0), initial_per_label={0: 7, 1: 4},
        observe=lambda _t, population, groups, _w: sizes.append(np.bincount(groups).tolist()),
    )
    assert sizes == [[7, 4]]
    with pytest.raises(ValueError, match="smaller than its outputs"):
        run_private_evolution(
            private_embeddings=hashing_embed(PRIVATE), private_groups=np.zeros(len(PRIVATE), dtype=np.int64),
            labels=[None], outputs_per_label={0: 3}, plan=calibrate_pe(50.0, 1e-6, 1), variations=2,
            instruction="Write.", generate=RecordingGenerator(["x"]), embed=hashing_embed,
            rng=np.random.default_rng(0), initial_per_label={0: 2},
        )


# ---------------------------------------------------------------------------------------------
# generate(method="pe") on the tiny model


def _pe(**kw):
    base = dict(epsilon=3.0, delta=1e-6, method="pe", iterations=2, variations=1, max_new_tokens=6,
                num_texts=2, embedder=hashing_embed, progress=False)
    base.update(kw)
    return base


def test_tiny_model_end_to_end_with_labels_and_ledger(tiny):
    model, tokenizer, _ = tiny
    labels = ["pos", "neg"] * 6
    result = generate(PRIVATE, labels=labels, label_set=["pos", "neg"], model=(model, tokenizer), **_pe())
    assert len(result.texts) == 4 and result.labels == ["pos", "pos", "neg", "neg"]
    assert result.method == "pe"
    charge = result.ledger.charges()[0]
    sigma = calibrate_pe(3.0, 1e-6, 2).noise_multiplier
    assert charge["event"] == {"type": "SelfComposedDpEvent", "count": 2,
                               "event": {"type": "GaussianDpEvent", "noise_multiplier": sigma}}
    pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4).compose(pe_event(sigma, 2)).get_epsilon(1e-6)
    assert result.ledger.epsilon_spent <= 3.0 and result.ledger.epsilon_spent == pytest.approx(pld, rel=0.02)
    assert [e["kind"] for e in result.ledger.entries] == ["charge", "completion"]
    assert SECRET not in str(result.ledger.to_dict()) and SECRET not in str(result.card())
    assert result.card()["text_generation"]["method"] == "pe"
    assert charge["parameters"]["top_k"] == 200  # pe's default sampling set


def test_auto_on_a_cpu_runs_pe_with_the_cpu_schedule_and_records_it(tiny):
    """method="auto" with iterations/variations unset: PE, 6 rounds, 3 variations on a CPU at
    epsilon 3 (dpsynth.text.auto.pe_schedule); sigma is calibrated for those 6 rounds and the
    ledger says so."""
    model, tokenizer, _ = tiny
    kwargs = _pe(method="auto", num_texts=1)
    del kwargs["iterations"], kwargs["variations"]
    result = generate(PRIVATE, model=(model, tokenizer), device="cpu", **kwargs)
    assert result.method == "pe"
    charge = result.ledger.charges()[0]
    assert charge["event"]["count"] == 6
    assert charge["event"]["event"]["noise_multiplier"] == calibrate_pe(3.0, 1e-6, 6).noise_multiplier
    assert (charge["parameters"]["iterations"], charge["parameters"]["variations_per_candidate"]) == (6, 3)


def test_the_schedule_follows_where_the_model_decodes(tiny, monkeypatch):
    """A model object passed without ``device`` stays where it is, so its device (not the
    machine's default) picks PE's schedule; on Ray, the actors' device does."""
    from dpsynth.text.models import LoadedModel, load_causal_lm
    from dpsynth.text.synthesis import _device_type

    model, tokenizer, _ = tiny
    loaded = load_causal_lm((model, tokenizer))
    assert isinstance(loaded, LoadedModel)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with a GPU
    assert _device_type(None, "memory") == "cuda"
    assert _device_type(None, "memory", (model, tokenizer)) == "cpu"
    assert _device_type(None, "memory", loaded) == "cpu"
    assert _device_type("cpu", "memory", None) == "cpu"
    assert _device_type("cuda", "ray", loaded) == "cuda" and _device_type(None, "ray", loaded) == "cpu"


def test_the_tiny_model_never_sees_a_private_text(tiny):
    model, tokenizer, _ = tiny
    seen: list[str] = []

    def record(_module, args):  # every token id the model embeds, whichever forward path runs
        seen.extend(tokenizer.batch_decode(args[0]))

    handle = model.get_input_embeddings().register_forward_pre_hook(record)
    try:
        generate(PRIVATE, model=(model, tokenizer), **_pe())
    finally:
        handle.remove()
    assert seen and not any(SECRET in row for row in seen)


class ExplodingTexts:
    def __len__(self):
        return 20

    def __iter__(self):
        raise AssertionError("a private text was read")

    def __getitem__(self, index):
        raise AssertionError("a private text was read")


def test_short_budget_is_refused_before_any_embedding(tiny):
    model, tokenizer, _ = tiny
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return hashing_embed(texts)

    ledger = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    before = ledger.to_dict()
    with pytest.raises(BudgetExceededError):
        generate(ExplodingTexts(), model=(model, tokenizer), ledger=ledger, **_pe(embedder=embed))
    assert calls == [] and ledger.to_dict() == before


def test_variation_kinds_are_recorded_and_a_bad_kind_is_refused_before_the_charge(tiny):
    model, tokenizer, _ = tiny
    result = generate(PRIVATE, model=(model, tokenizer), **_pe(variation_kinds=["example", "paraphrase"]))
    assert result.ledger.charges()[0]["parameters"]["variation_prompts"].startswith("example, paraphrase in turn")
    default = generate(PRIVATE, model=(model, tokenizer), **_pe())
    assert default.ledger.charges()[0]["parameters"]["variation_prompts"].startswith("paraphrase, fill_in in turn")
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    with pytest.raises(ValueError, match="variation kinds"):
        generate(ExplodingTexts(), model=(model, tokenizer), ledger=ledger, **_pe(variation_kinds=["summary"]))
    assert ledger.entries == []


def test_the_vote_space_is_recorded_and_a_bad_one_is_refused_before_the_charge(tiny):
    model, tokenizer, _ = tiny
    assert generate(PRIVATE, model=(model, tokenizer), **_pe()).ledger.charges()[0]["parameters"]["vote_space"] == "centred"
    raw = generate(PRIVATE, model=(model, tokenizer), **_pe(vote_space="raw"))
    assert raw.ledger.charges()[0]["parameters"]["vote_space"] == "raw" and raw.decoding["vote_space"] == "raw"
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    with pytest.raises(ValueError, match="vote space"):
        generate(ExplodingTexts(), model=(model, tokenizer), ledger=ledger, **_pe(vote_space="whitened"))
    assert ledger.entries == []


def test_labels_outside_the_declared_set_are_refused_naming_no_private_value_or_position(tiny):
    model, tokenizer, _ = tiny
    with pytest.raises(ValueError, match="not in the declared label set") as refused:
        generate(PRIVATE, labels=["a"] * 7 + ["privlabel"] + ["a"] * 4, label_set=["a"], model=(model, tokenizer),
                 **_pe())
    message = str(refused.value)
    assert "['a']" in message  # the public label set
    assert "privlabel" not in message and "7" not in message and "12" not in message


def test_cli_method_pe_end_to_end(tiny, tmp_path, monkeypatch):
    import csv
    import json

    from typer.testing import CliRunner

    from dpsynth.accounting.verify import verify_text
    from dpsynth.cli import app

    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DPSYNTH_SOURCE_BUDGET", "off")
    _, _, model_dir = tiny
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"note": t, "y": "a" if i % 2 else "b"}) + "\n" for i, t in enumerate(PRIVATE)))
    out = tmp_path / "out.csv"
    threads = torch.get_num_threads()
    result = CliRunner().invoke(app, [
        "text", "synth", str(src), "--text-field", "note", "--label-field", "y", "--labels", "a,b", "-o", str(out),
        "--epsilon", "3", "--method", "pe", "--iterations", "2", "--variations", "1", "--num-texts", "2",
        "--max-new-tokens", "5", "--model", str(model_dir), "--embedder", str(model_dir), "-q",
    ])
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "Method: pe (Private Evolution), iterations=2, variations=1, vote space=centred" in result.output
    assert "Instruction: Write one realistic note" in result.output
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == ["a", "a", "b", "b"]
    assert verify_text((tmp_path / "out.csv.ledger.json").read_text(encoding="utf-8")).ok


def test_pe_on_an_empty_input_runs_and_is_charged_without_calling_the_embedder_on_it(tiny):
    import warnings

    model, tokenizer, _ = tiny
    seen = []

    def embed(texts):  # a caller's function that cannot embed an empty list
        assert texts, "the embedder was called on an empty list"
        seen.append(len(texts))
        return hashing_embed(texts)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either (none may depend on the number of texts)
        result = generate([], model=(model, tokenizer), **_pe(embedder=embed))
    assert len(result.texts) == 2 and result.ledger.epsilon_spent > 0
    assert seen  # the public candidates were embedded


def test_cli_refuses_an_unknown_variation_kind_before_reading(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    src = tmp_path / "in.jsonl"
    src.write_text('{"note": "private"}\n', encoding="utf-8")
    for flag, value in (("--variation-kinds", "paraphrase,summary"), ("--vote-space", "whitened")):
        result = CliRunner().invoke(app, [
            "text", "synth", str(src), "--text-field", "note", "-o", str(tmp_path / "out.jsonl"), "--epsilon", "3",
            "--method", "pe", flag, value, "-q",
        ])
        assert result.exit_code == 2 and flag in result.output, result.output
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["in.jsonl"]
