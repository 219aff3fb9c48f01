"""``dpsynth.text.generate`` end to end on a tiny random model: ledger, labels, refusals, release."""

from __future__ import annotations

import json

import pytest

from dpsynth.accounting import BudgetExceededError, InvalidBudgetError, Ledger, PrivacyBudget, compute_charge
from dpsynth.accounting.verify import verify_text
from dpsynth.release import OutputExistsError
from dpsynth.text import generate
from dpsynth.text.privacy import PRIVACY_UNIT, calibrate_text_mechanism
from tests.test_text_privacy import cks_epsilon

pytestmark = pytest.mark.usefixtures("source_key_home")  # a fresh dpsynth home per test

TEXTS = [
    f"Visit {i}: the patient was discharged home with instructions to rest and drink fluids."
    for i in range(24)
]


def _small(**kw):
    base = dict(
        epsilon=3.0, delta=1e-6, method="private_prediction", group_size=4, max_new_tokens=8, num_texts=3,
        progress=False,
    )
    base.update(kw)
    return base


def test_generate_returns_texts_and_a_ledger_whose_epsilon_matches_independent_computation(tiny_model):
    result = generate(TEXTS, model=tiny_model, **_small())
    assert len(result.texts) == 3 and all(isinstance(t, str) for t in result.texts)
    assert result.labels is None
    ledger = result.ledger
    charge = ledger.charges()[0]
    assert charge["privacy_unit"] == PRIVACY_UNIT == ledger.privacy_unit
    assert charge["neighbouring_relation"] == "add_or_remove_one"
    assert charge["sampling"] == "partition"
    assert charge["event"]["type"] == "SelfComposedDpEvent" and charge["event"]["count"] == 8
    assert charge["event"]["event"]["type"] == "ExponentialMechanismDpEvent"
    clip = charge["parameters"]["clip"]
    assert clip == pytest.approx(calibrate_text_mechanism(3.0, 1e-6, 4, 8, 1.0).clip)
    eps_tok = charge["event"]["event"]["epsilon"]
    assert eps_tok == pytest.approx(2 * clip / (4 * 1.0))
    rho = 8 * clip**2 / (2 * 4**2 * 1.0**2)
    independent = cks_epsilon(rho, 1e-6)
    assert independent <= ledger.epsilon_spent <= independent * 1.01
    assert ledger.epsilon_spent <= 3.0
    assert ledger.delta_spent == pytest.approx(1e-6)
    kinds = [e["kind"] for e in ledger.entries]
    assert kinds == ["charge", "completion"]
    completion = ledger.entries[1]
    assert completion["outputs"]["count"] == 3
    # nothing derived from the data in the public record besides the keyed fingerprint
    blob = json.dumps(ledger.to_dict())
    assert "discharged" not in blob and '"n_texts"' not in blob and str(len(TEXTS)) + " texts" not in blob


def test_number_of_outputs_is_public_not_derived_from_input_size(tiny_model):
    small = generate(TEXTS[:4], model=tiny_model, **_small(num_texts=5))
    large = generate(TEXTS * 3, model=tiny_model, **_small(num_texts=5))
    assert len(small.texts) == len(large.texts) == 5
    assert small.ledger.epsilon_spent == pytest.approx(large.ledger.epsilon_spent)


def test_labels_use_the_public_label_set_and_per_label_counts(tiny_model):
    labels = ["pos", "neg"] * 12
    result = generate(TEXTS, labels=labels, label_set=["pos", "neg", "neutral"], model=tiny_model, **_small(num_texts=2))
    assert result.labels == ["pos", "pos", "neg", "neg", "neutral", "neutral"]
    mapped = generate(
        TEXTS, labels=labels, label_set=["pos", "neg"], model=tiny_model, **_small(num_texts={"pos": 1, "neg": 3})
    )
    assert mapped.labels == ["pos", "neg", "neg", "neg"]
    records = mapped.records()
    assert records[0].keys() == {"text", "label"}
    # one label set, one charge: labels compose in parallel
    assert mapped.ledger.epsilon_spent == pytest.approx(result.ledger.epsilon_spent)


def test_label_errors_are_clear(tiny_model):
    with pytest.raises(ValueError, match="PUBLIC label set"):
        generate(TEXTS, labels=["a"] * len(TEXTS), model=tiny_model, **_small())
    with pytest.raises(ValueError, match="not in the declared label set"):
        generate(TEXTS, labels=["a"] * 23 + ["zzz"], label_set=["a"], model=tiny_model, **_small())
    with pytest.raises(ValueError, match="different lengths"):
        generate(TEXTS, labels=["a"] * 3, label_set=["a"], model=tiny_model, **_small())
    with pytest.raises(ValueError, match="exactly the label set"):
        generate(TEXTS, labels=["a"] * 24, label_set=["a"], model=tiny_model, **_small(num_texts={"b": 1}))


def test_no_input_size_is_refused_not_even_zero(tiny_model):
    """Issue 8 §4: an empty data set neighbours every one-text data set, so it is not refused."""
    result = generate([], model=tiny_model, **_small())
    assert len(result.texts) == 3
    assert [e["kind"] for e in result.ledger.entries] == ["charge", "completion"]


def test_fewer_texts_than_one_group_is_not_refused_and_charges_like_any_call(tiny_model):
    """Issue 8 §4: whether a release exists must not depend on n < B (no data-dependent refusal)."""
    few = generate(TEXTS[:3], model=tiny_model, **_small())
    many = generate(TEXTS, model=tiny_model, **_small())
    assert len(few.texts) == len(many.texts) == 3
    assert few.ledger.epsilon_spent == pytest.approx(many.ledger.epsilon_spent)
    assert [e["kind"] for e in few.ledger.entries] == ["charge", "completion"]


class ExplodingTexts:
    """A sized text collection that fails the test if any record is read."""

    def __len__(self) -> int:
        return 20

    def __iter__(self):
        raise AssertionError("a private text was read")

    def __getitem__(self, index):
        raise AssertionError("a private text was read")


class NoCallTokenizer:
    """Delegates to a real tokenizer but fails if asked to tokenize anything."""

    def __init__(self, inner):
        object.__setattr__(self, "_inner", inner)

    def __getattr__(self, name):
        if name in {"encode", "batch_encode_plus", "encode_plus", "apply_chat_template", "tokenize"}:
            raise AssertionError(f"tokenizer.{name} was used")
        return getattr(self._inner, name)

    def __call__(self, *args, **kwargs):
        raise AssertionError("the tokenizer was called")


def test_budget_exceeded_is_refused_before_any_text_is_read_or_tokenized(tiny_model):
    model, tokenizer = tiny_model
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    before = ledger.to_dict()
    with pytest.raises(BudgetExceededError, match="nothing was read"):
        generate(ExplodingTexts(), model=(model, NoCallTokenizer(tokenizer)), ledger=ledger, **_small(epsilon=2.0))
    assert ledger.to_dict() == before


def test_second_call_on_a_shared_ledger_is_refused_when_the_budget_is_spent(tiny_model):
    ledger = Ledger.create(PrivacyBudget(4.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    generate(TEXTS, model=tiny_model, ledger=ledger, **_small(epsilon=3.0))
    spent = ledger.epsilon_spent
    with pytest.raises(BudgetExceededError):
        generate(ExplodingTexts(), model=tiny_model, ledger=ledger, **_small(epsilon=3.0))
    assert ledger.epsilon_spent == spent


@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan"), float("inf")])
def test_invalid_budget_is_refused(tiny_model, epsilon):
    with pytest.raises(InvalidBudgetError):
        generate(ExplodingTexts(), model=tiny_model, **_small(epsilon=epsilon))


def test_bad_parameters_are_refused_before_data_access(tiny_model):
    for kwargs in [dict(delta=0.0), dict(group_size=0), dict(method="nope"), dict(max_new_tokens=0), dict(temperature=0.0),
                   dict(top_k=-1), dict(top_k=2.5), dict(num_texts=0), dict(seed="x")]:
        with pytest.raises(ValueError):
            generate(ExplodingTexts(), model=tiny_model, **_small(**kwargs))
    with pytest.raises(TypeError):
        generate("just one string", model=tiny_model, **_small())
    wrong_unit = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit="one row", source_name="x")
    with pytest.raises(ValueError, match="privacy unit"):
        generate(ExplodingTexts(), model=tiny_model, ledger=wrong_unit, **_small())


def test_top_k_defaults_per_method_and_is_recorded(tiny_model):
    """top_k=None takes the method's default (50 private prediction, 200 pe; 0 = whole vocabulary); an
    explicit value wins; the ledger records the value used."""
    from dpsynth.text.request import PE_DEFAULT_TOP_K, PRIVATE_PREDICTION_DEFAULT_TOP_K

    assert (PE_DEFAULT_TOP_K, PRIVATE_PREDICTION_DEFAULT_TOP_K) == (200, 50)
    pp = generate(TEXTS, model=tiny_model, **_small(max_new_tokens=4, num_texts=2))
    assert pp.ledger.charges()[0]["parameters"]["top_k"] == 50
    pp = generate(TEXTS, model=tiny_model, top_k=0,
                  **_small(max_new_tokens=4, num_texts=2))
    assert pp.ledger.charges()[0]["parameters"]["top_k"] == 0


def test_seed_does_not_seed_the_privacy_noise(tiny_model):
    a = generate(TEXTS, model=tiny_model, seed=123, **_small(max_new_tokens=12, num_texts=4))
    b = generate(TEXTS, model=tiny_model, seed=123, **_small(max_new_tokens=12, num_texts=4))
    assert a.texts != b.texts
    charge = a.ledger.charges()[0]
    assert "123" not in json.dumps(charge["parameters"])


def test_save_writes_jsonl_ledger_and_card_and_refuses_to_overwrite(tiny_model, tmp_path):
    result = generate(TEXTS, labels=["x", "y"] * 12, label_set=["x", "y"], model=tiny_model, **_small(num_texts=2))
    out = tmp_path / "synthetic.jsonl"
    paths = result.save(out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == result.records() and len(lines) == 4
    ledger_text = paths.ledger.read_text(encoding="utf-8")
    assert verify_text(ledger_text).ok
    import yaml

    card = yaml.safe_load(paths.card.read_text(encoding="utf-8"))
    assert card["privacy"]["epsilon"] == pytest.approx(result.ledger.epsilon_spent)
    assert card["privacy"]["unit"] == PRIVACY_UNIT
    assert card["generator_model"]["name"]
    assert len(card["text_generation"]["prompt_template_sha256"]) == 64
    assert card["filters"] == []
    before = out.read_bytes()
    with pytest.raises(OutputExistsError):
        result.save(out)
    assert out.read_bytes() == before
    result.save(out, force=True)
    recharged = compute_charge(
        calibrate_text_mechanism(3.0, 1e-6, 4, 8, 1.0).event, 1e-6
    ).epsilon
    assert json.loads(ledger_text)["entries"][0]["charge"]["epsilon"] == pytest.approx(recharged)


@pytest.mark.parametrize("epsilon,tokens", [(3.0, 1), (8.0, 4)])
def test_first_token_privacy_loss_on_the_real_pipeline_is_within_the_ledger_event(tiny_model, epsilon, tokens):
    """Prompts -> model -> DClip aggregate -> Top-k+ -> softmax, for D and D + {x} in one group:
    the first token's log-probabilities differ by at most the per-token epsilon the ledger composes."""
    from dpsynth.text.engine import RowBatchDecoder
    from dpsynth.text.mechanism import masked_log_probs, private_step
    from dpsynth.text.prompts import PromptEncoder, PromptTemplate

    model, tokenizer = tiny_model
    plan = calibrate_text_mechanism(epsilon, 1e-6, 4, tokens, 1.0)
    eps_tok = plan.event.event.epsilon
    encoder = PromptEncoder(tokenizer, PromptTemplate(), max_example_tokens=32)
    base = TEXTS[:4]
    public = encoder.public_ids(None)
    import torch

    worst = 0.0
    for extra in ["Great coffee, quick service!", "Call your doctor if the fever returns.", "zzz qqq 123 ???"]:
        dists = []
        for texts in (base, base + [extra]):
            rows = [public] + encoder.private_ids(texts, None)
            with torch.inference_mode():
                logits = RowBatchDecoder(model, tokenizer.pad_token_id).prefill(rows).float()
            group = torch.zeros(len(texts), dtype=torch.long)
            aggregated, mask = private_step(logits[1:], logits[:1], group, plan.clip, 4, 50)
            dists.append((masked_log_probs(aggregated, mask, 1.0)[0], mask[0]))
        (lp, mask), (lp2, mask2) = dists
        assert torch.equal(mask, mask2)
        ratio = (lp - lp2)[mask]
        assert ratio.abs().max() <= eps_tok + 1e-5
        assert ratio.max() - ratio.min() <= eps_tok + 1e-5
        worst = max(worst, float(ratio.max() - ratio.min()))
    assert worst > 0.1 * eps_tok  # the private text does move the distribution


def test_a_shared_ledger_file_is_charged_and_completed_on_disk(tiny_model, tmp_path):
    from dpsynth.accounting import LedgerFile

    path = tmp_path / "source.ledger.json"
    shared = LedgerFile.create(path, PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="notes")
    result = generate(TEXTS, model=tiny_model, ledger=shared, **_small(epsilon=3.0))
    on_disk = shared.load()
    assert [e["kind"] for e in on_disk.entries] == ["charge", "completion"]
    assert on_disk.epsilon_spent == pytest.approx(result.ledger.epsilon_spent)
    with pytest.raises(BudgetExceededError):
        generate(ExplodingTexts(), model=tiny_model, ledger=shared, **_small(epsilon=3.0))
    assert len(shared.load().entries) == 2


# ---- nothing the caller sees depends on the number of texts (warnings, refusals, messages)

def _texts(n):
    return [f"Note {i}: the patient rested at home and drank fluids." for i in range(n)]


def _hashing_embed(texts):
    import numpy as np

    out = np.zeros((len(texts), 16))
    for row, text in enumerate(texts):
        for ch in text:
            out[row, ord(ch) % 16] += 1.0
    return out


def _observe(call):
    """``(warnings as (category, message), exception as (type, message) or None)`` of ``call()``."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
            raised = None
        except Exception as exc:  # noqa: BLE001 - compared, not handled
            raised = (type(exc), str(exc))
    return [(w.category, str(w.message)) for w in caught], raised


@pytest.mark.parametrize("method", ["private_prediction", "pe"])
def test_a_refused_call_looks_the_same_for_0_1_33_and_1000_texts(tiny_model, method):
    """The budget refusal comes before any text is read, and nothing before it -- no warning, no
    message -- depends on how many texts there are (n = 0 used to warn, n > 4 num_texts B too)."""
    extra = dict(method="pe", iterations=1, variations=1, embedder=_hashing_embed) if method == "pe" else {}
    seen = []
    for n in (0, 1, 33, 1000):
        ledger = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
        seen.append(_observe(lambda: generate(_texts(n), model=tiny_model, ledger=ledger,
                                              **_small(epsilon=2.0, num_texts=1, **extra))))
        assert ledger.entries == []
    warnings_seen, raised = seen[0]
    assert warnings_seen == [] and raised is not None and raised[0] is BudgetExceededError
    assert all(observed == seen[0] for observed in seen)


def test_a_run_warns_the_same_whatever_the_number_of_texts(tiny_model):
    """0 texts (the old NoTextsWarning) and 33 > 4 x num_texts x B texts (the old LargeGroupsWarning)
    warn exactly as 1 text does."""
    observed = [_observe(lambda: generate(_texts(n), model=tiny_model, **_small(num_texts=1, max_new_tokens=2)))
                for n in (0, 1, 33)]
    assert all(raised is None for _, raised in observed)
    assert observed[0][0] == observed[1][0] == observed[2][0]


def test_a_non_string_text_fails_after_the_charge_naming_no_position_type_or_value(tiny_model):
    texts = _texts(5) + [{"ssn": "123-45-6789"}] + _texts(2)
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    with pytest.raises(TypeError, match="must be a string") as failed:
        generate(texts, model=tiny_model, ledger=ledger, **_small())
    message = str(failed.value)
    assert "5" not in message and "dict" not in message and "123-45" not in message and "#" not in message
    assert [e["kind"] for e in ledger.entries] == ["charge", "completion"]  # the charge stays


def test_a_label_outside_the_set_names_the_public_set_only(tiny_model):
    labels = ["a"] * 9 + ["privlabel"] + ["a"] * 14
    with pytest.raises(ValueError, match="not in the declared label set") as refused:
        generate(TEXTS, labels=labels, label_set=["a", "b"], model=tiny_model, **_small())
    message = str(refused.value)
    assert "['a', 'b']" in message
    assert "privlabel" not in message and "9" not in message and "24" not in message


def test_prepare_checks_every_public_argument_without_the_texts_and_run_does_the_rest(tiny_model):
    from dpsynth.text import prepare_generation
    from dpsynth.text.gguf import ModelNotFoundError
    from dpsynth.text.synthesis import plan_summary

    def public(**kw):
        return {k: v for k, v in _small(**kw).items() if k != "progress"}

    for bad in [dict(num_texts=0), dict(temperature=0.0), dict(top_k=-1), dict(max_new_tokens=0),
                dict(instruction="  "), dict(label_set=["a", "a"]), dict(method="nope"), dict(group_size=0),
                dict(max_batch_rows=1), dict(device="nonsense"),
                dict(method="pe", variations=0), dict(method="pe", iterations=0),
                dict(method="pe", embedder="/nonexistent/embedder"), dict(method="pe", vote_space="whitened")]:
        with pytest.raises((ValueError, FileNotFoundError)):
            prepare_generation(model=tiny_model, **public(**bad))
    with pytest.raises(ModelNotFoundError):
        prepare_generation(model="/nonexistent/model", **public())
    prepared = prepare_generation(model=tiny_model, **public())
    assert prepared.summary() == plan_summary(epsilon=3.0, delta=1e-6, method="private_prediction",
                                              num_texts_total=3, group_size=4, max_new_tokens=8)
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit=PRIVACY_UNIT, source_name="x")
    with pytest.raises(ValueError, match="PUBLIC label set"):  # the call's shape, before the charge
        prepared.run(TEXTS, ["a"] * len(TEXTS), ledger=ledger, progress=False)
    assert ledger.entries == []
    result = prepared.run(TEXTS, ledger=ledger, progress=False)
    assert len(result.texts) == 3 and [e["kind"] for e in ledger.entries] == ["charge", "completion"]
