"""Keyed-hash grouping (data-independent partition) and prompt construction."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from scipy import stats

from dpsynth.text.grouping import fresh_key, keyed_group_index, partition_texts
from dpsynth.text.prompts import PromptEncoder, PromptTemplate

TEXTS = [f"private text number {i}" for i in range(300)]


def _membership(groups):
    return {text: index for index, group in enumerate(groups) for text in group.members}


def test_adding_or_removing_one_text_changes_exactly_one_group_by_one_member():
    key = fresh_key()
    base = partition_texts(TEXTS, {None: 7}, key)
    assert len(base) == 7
    assert sorted(t for g in base for t in g.members) == sorted(TEXTS)
    added = partition_texts(TEXTS + ["an extra text"], {None: 7}, key)
    changed = [i for i in range(7) if base[i].members != added[i].members]
    assert len(changed) == 1
    assert set(added[changed[0]].members) - set(base[changed[0]].members) == {"an extra text"}
    removed = partition_texts(TEXTS[1:], {None: 7}, key)
    changed = [i for i in range(7) if base[i].members != removed[i].members]
    assert len(changed) == 1
    # every remaining text keeps its group, whatever the input order
    shuffled = list(reversed(TEXTS[1:]))
    assert _membership(partition_texts(shuffled, {None: 7}, key)) == _membership(removed)


def test_partition_is_roughly_uniform_and_depends_on_the_secret_key():
    key = bytes(range(32))  # fixed key: the uniformity check is deterministic (not flaky)
    counts = Counter(keyed_group_index(t, 10, key) for t in TEXTS)
    chi = stats.chisquare([counts[i] for i in range(10)])
    assert chi.pvalue > 1e-4
    other = _membership(partition_texts(TEXTS, {None: 10}, fresh_key()))
    same = sum(other[t] == g for t, g in _membership(partition_texts(TEXTS, {None: 10}, key)).items())
    assert same < 0.3 * len(TEXTS)  # a fresh key reshuffles (expected 10% agreement)
    assert len(fresh_key()) == 32 and fresh_key() != fresh_key()


def test_labels_are_grouped_within_their_public_label_and_empty_groups_are_kept():
    key = fresh_key()
    labels = ["a" if i % 3 else "b" for i in range(len(TEXTS))]
    groups = partition_texts(TEXTS, {"a": 4, "b": 2, "c": 3}, key, labels)
    assert [g.label for g in groups] == ["a"] * 4 + ["b"] * 2 + ["c"] * 3
    label_of = dict(zip(TEXTS, labels))
    for group in groups:
        assert all(label_of[t] == group.label for t in group.members)
    assert all(g.members == () for g in groups if g.label == "c")
    with pytest.raises(ValueError, match="not in the declared label set"):
        partition_texts(TEXTS, {"a": 4}, key, labels)
    with pytest.raises(ValueError, match="different lengths") as mismatch:
        partition_texts(TEXTS, {"a": 4}, key, labels[:3])
    assert not any(ch.isdigit() for ch in str(mismatch.value))  # no count of private texts
    with pytest.raises(ValueError):
        keyed_group_index("x", 0, key)


@pytest.fixture
def tokenizer(tiny_model):
    return tiny_model[1]


def test_private_prompt_holds_the_truncated_example_and_public_prompt_holds_none(tokenizer):
    template = PromptTemplate(instruction="Write a short review.")
    encoder = PromptEncoder(tokenizer, template, max_example_tokens=5)
    secret = "The patient Zyxwv was discharged with instructions to rest."
    secret_ids = tokenizer(secret, add_special_tokens=False)["input_ids"]
    assert len(secret_ids) > 5
    public = encoder.public_ids(None)
    (private,) = encoder.private_ids([secret], None)
    assert "Zyxwv" not in tokenizer.decode(public)
    assert "Write a short review." in tokenizer.decode(public)
    decoded = tokenizer.decode(private)
    assert tokenizer.decode(secret_ids[:5]) in decoded
    assert tokenizer.decode(secret_ids[:6]) not in decoded  # truncated to 5 tokens
    assert decoded.endswith("<|im_start|>assistant\n")
    # two texts of different lengths share prefix and suffix exactly
    a, b = encoder.private_ids(["short", "a somewhat longer example text"], "pos")
    assert "Here is a pos example:" in tokenizer.decode(a)
    suffix = encoder.private_ids([""], "pos")[0]
    assert a[-8:] == b[-8:] == suffix[-8:]
    assert len(b) > len(a) > len(suffix)


def test_template_fingerprint_and_validation():
    assert PromptTemplate().sha256() == PromptTemplate().sha256()
    assert PromptTemplate(instruction="Other.").sha256() != PromptTemplate().sha256()
    with pytest.raises(ValueError):
        PromptTemplate(instruction=" ")
    with pytest.raises(ValueError):
        PromptTemplate(private_suffix="no placeholder")


def test_clipping_bound_holds_on_real_model_logits(tiny_model):
    """Replacing / removing one member's TEXT moves the aggregate by <= 2C/B / C/B (tiny model)."""
    from dpsynth.text.engine import RowBatchDecoder
    from dpsynth.text.mechanism import aggregate

    model, tok = tiny_model
    encoder = PromptEncoder(tok, PromptTemplate(), max_example_tokens=32)
    members = ["Great coffee.", "The room was dirty and noisy.", "Take medication twice a day.", "Quick fox."]
    replacement = "Call your doctor if the fever returns!!"
    rows = [encoder.public_ids(None)] + encoder.private_ids(members + [replacement], None)
    with torch.inference_mode():
        logits = RowBatchDecoder(model, tok.pad_token_id).prefill(rows).float()
    public, member_logits = logits[:1], logits[1:]
    clip, divisor = 1.5, 4
    group = torch.zeros(4, dtype=torch.long)
    full = aggregate(member_logits[:4], public, clip, divisor, row_group=group)
    replaced = aggregate(torch.cat([member_logits[:3], member_logits[4:]]), public, clip, divisor, row_group=group)
    removed = aggregate(member_logits[:3], public, clip, divisor, row_group=group[:3])
    assert (full - replaced).abs().max() <= 2 * clip / divisor + 1e-5
    assert (full - removed).abs().max() <= clip / divisor + 1e-5
    assert (full - removed).abs().max() > 0.5 * clip / divisor  # the bound is nearly reached
