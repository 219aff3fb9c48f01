"""The batched KV-cached decoder against a naive full-recompute reference, on a tiny random model."""

from __future__ import annotations

import pytest
import torch

from dpsynth.text.engine import (
    DecodeSettings,
    common_prefix_length,
    GroupPrompts,
    RowBatchDecoder,
    ShardedRowDecoder,
    chunk_groups,
    decode_groups,
)
from dpsynth.randomness import secret_torch_generator as entropy_generator
from dpsynth.text.kv_cache import ReservedCache
from dpsynth.text.mechanism import aggregate, candidate_mask


def _full_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0, -1].float()


@pytest.mark.parametrize("reserve", [0, 2, 10])  # KV buffers grow at the first step, mid-way, or never
@pytest.mark.parametrize("shard_rows,shared_prefix", [(None, 0), (None, 12), (1, 12), (3, 0), (3, 12)])
def test_cached_left_padded_decoding_matches_full_recompute(tiny_model, shard_rows, shared_prefix, reserve):
    model, _ = tiny_model
    prefix = [1] + list(range(100, 100 + shared_prefix))
    rows = [prefix + r for r in ([5, 6, 7, 8, 9, 10, 11], [20, 21], [30, 31, 32, 33], [40])]
    seqs = [list(r) for r in rows]
    if shard_rows is None:
        decoder = RowBatchDecoder(model, pad_token_id=0, reserve=reserve)
    else:
        decoder = ShardedRowDecoder(model, pad_token_id=0, shard_rows=shard_rows, reserve=reserve)
    with torch.inference_mode():
        logits = decoder.prefill(rows)
        shards = decoder.shards if shard_rows is not None else [decoder]
        assert all(isinstance(d.cache, ReservedCache) for d in shards)
        for i, seq in enumerate(seqs):
            assert torch.allclose(logits[i].float(), _full_logits(model, seq), atol=1e-4)
        for step in range(3):
            tokens = torch.tensor([50 + step + 7 * i for i in range(len(seqs))])
            for seq, token in zip(seqs, tokens.tolist()):
                seq.append(token)
            logits = decoder.step(tokens)
            for i, seq in enumerate(seqs):
                assert torch.allclose(logits[i].float(), _full_logits(model, seq), atol=1e-4), (step, i)
        # prune rows 0 and 2 (as when their groups finish) and keep decoding the others
        keep = [1, 3]
        decoder.select_rows(torch.tensor(keep))
        seqs = [seqs[i] for i in keep]
        for step in range(2):
            tokens = torch.tensor([90 + step, 91 + step])
            for seq, token in zip(seqs, tokens.tolist()):
                seq.append(token)
            logits = decoder.step(tokens)
            for i, seq in enumerate(seqs):
                assert torch.allclose(logits[i].float(), _full_logits(model, seq), atol=1e-4)


def _reference_decode(model, groups, settings):
    """Naive loop: one group at a time, full recompute every step, explicit formulas, argmax.

    With a tiny temperature the engine's softmax sampling is an argmax, so outputs must agree.
    """
    outputs = []
    for group in groups:
        public = list(group.public_ids)
        members = [list(m) for m in group.member_ids]
        generated = []
        for _ in range(settings.max_new_tokens):
            pub = _full_logits(model, public)
            if members:
                mem = torch.stack([_full_logits(model, m) for m in members])
                agg = pub + (mem - pub).clamp(-settings.clip, settings.clip).sum(0) / settings.divisor
            else:
                agg = pub
            mask = candidate_mask(pub, settings.top_k, settings.clip, settings.divisor)
            token = int(agg.masked_fill(~mask, float("-inf")).argmax())
            if token in settings.stop_token_ids:
                break
            generated.append(token)
            public.append(token)
            for m in members:
                m.append(token)
        outputs.append(generated)
    return outputs


def _groups(tokenizer):
    """Realistic prompts (chat template, shared instruction prefix) of different lengths."""
    from dpsynth.text.prompts import PromptEncoder, PromptTemplate

    encoder = PromptEncoder(tokenizer, PromptTemplate(), max_example_tokens=24)
    return [
        GroupPrompts(encoder.public_ids(None), encoder.private_ids(
            ["The patient was discharged.", "Great coffee and quiet place to work."], None)),
        GroupPrompts(encoder.public_ids(None), []),  # empty group: public prompt only
        GroupPrompts(encoder.public_ids("neg"), encoder.private_ids(["I would not recommend this hotel."] * 3, "neg")),
        GroupPrompts(encoder.public_ids(None), encoder.private_ids(
            ["Call your doctor if the fever returns or you feel short of breath."], None)),
    ]


@pytest.mark.parametrize("max_rows", [64, 3, 2])
def test_batched_engine_equals_naive_reference_with_early_stops_and_chunking(tiny_model, max_rows):
    model, tokenizer = tiny_model
    groups = _groups(tokenizer)
    base = DecodeSettings(
        max_new_tokens=10, clip=2.0, divisor=2, temperature=1e-6, top_k=20, stop_token_ids=(), pad_token_id=0,
        max_rows=max_rows,
    )
    free = _reference_decode(model, groups, base)
    assert all(len(out) == 10 for out in free)
    # make group 0 stop early (at its 4th token), which must drop it from the batch mid-way
    stop = free[0][3]
    settings = DecodeSettings(**{**base.__dict__, "stop_token_ids": (stop,)})
    expected = _reference_decode(model, groups, settings)
    assert len(expected[0]) == 3 and any(len(e) > 3 for e in expected)
    got = decode_groups(model, groups, settings, generator=entropy_generator(), progress=False)
    assert got == expected
    assert all(stop not in out for out in got)


def test_private_examples_change_the_output_distribution(tiny_model):
    """Sanity: with a large clip the members steer generation away from the public prompt's argmax."""
    model, tokenizer = tiny_model
    groups = _groups(tokenizer)
    settings = DecodeSettings(
        max_new_tokens=6, clip=50.0, divisor=1, temperature=1e-6, top_k=400, stop_token_ids=(), pad_token_id=0
    )
    with_members = decode_groups(model, groups, settings, generator=entropy_generator(), progress=False)
    public_only = [GroupPrompts(g.public_ids, []) for g in groups]
    without = decode_groups(model, public_only, settings, generator=entropy_generator(), progress=False)
    assert with_members[1] == without[1]  # the empty group is unaffected
    assert with_members[0] != without[0]


def test_sampling_noise_comes_from_the_generator(tiny_model):
    model, tokenizer = tiny_model
    groups = _groups(tokenizer)
    settings = DecodeSettings(
        max_new_tokens=8, clip=1.0, divisor=2, temperature=1.0, top_k=0, stop_token_ids=(), pad_token_id=0
    )

    def seeded(seed):
        g = torch.Generator()
        g.manual_seed(seed)
        return g

    a = decode_groups(model, groups, settings, generator=seeded(7), progress=False)
    b = decode_groups(model, groups, settings, generator=seeded(7), progress=False)
    assert a == b
    # default: fresh OS entropy on every call -> different samples (400-token vocabulary, 32 draws)
    c = decode_groups(model, groups, settings, progress=False)
    d = decode_groups(model, groups, settings, progress=False)
    assert c != d
    assert all(len(x) == 8 for x in c)


def test_chunk_groups_respects_row_budget_and_keeps_oversized_groups_alone():
    groups = [GroupPrompts([1], [[1]] * n) for n in [2, 2, 10, 0, 1, 3]]
    chunks = chunk_groups(groups, max_rows=6)
    assert [i for c in chunks for i in c] == list(range(6))
    for chunk in chunks:
        rows = sum(groups[i].rows for i in chunk)
        assert rows <= 6 or len(chunk) == 1
    assert [2] in chunks


def test_aggregate_used_by_engine_is_the_documented_formula():
    public = torch.randn(2, 30)
    members = torch.randn(5, 30) * 5
    row_group = torch.tensor([0, 0, 1, 1, 1])
    agg = aggregate(members, public, 0.4, 4, row_group=row_group)
    expected0 = public[0] + (members[:2] - public[0]).clamp(-0.4, 0.4).sum(0) / 4
    assert torch.allclose(agg[0], expected0, atol=1e-6)


def test_settings_validation():
    with pytest.raises(ValueError):
        DecodeSettings(max_new_tokens=0, clip=1.0, divisor=2, temperature=1.0, top_k=5, stop_token_ids=(), pad_token_id=0)
    with pytest.raises(ValueError):
        DecodeSettings(max_new_tokens=3, clip=1.0, divisor=0, temperature=1.0, top_k=5, stop_token_ids=(), pad_token_id=0)
    with pytest.raises(ValueError):
        DecodeSettings(max_new_tokens=3, clip=1.0, divisor=2, temperature=0.0, top_k=5, stop_token_ids=(), pad_token_id=0)


def test_sharded_decoder_refuses_unordered_selection(tiny_model):
    model, _ = tiny_model
    decoder = ShardedRowDecoder(model, pad_token_id=0, shard_rows=2)
    with torch.inference_mode():
        decoder.prefill([[1, 2], [1, 3], [1, 4]])
        with pytest.raises(ValueError, match="increasing"):
            decoder.select_rows(torch.tensor([2, 0]))
        decoder.select_rows(torch.tensor([2]))
        assert decoder.sizes == [1]
        assert decoder.step(torch.tensor([5])).shape[0] == 1


def test_common_prefix_length_leaves_every_row_a_token():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 1
    assert common_prefix_length([[7], [7]]) == 0
    assert common_prefix_length([[1, 2, 3], [2, 2, 3]]) == 0


def test_private_logits_on_candidate_columns_agree_with_the_full_computation(tiny_model):
    """Restricting the private rows' LM-head product to the public Top-k+ columns changes nothing."""
    from dpsynth.text.engine import SplitHead, restricted_log_probs
    from dpsynth.text.mechanism import masked_log_probs, private_step

    model, tokenizer = tiny_model
    assert SplitHead.supports(model)
    groups = _groups(tokenizer)
    public = [g.public_ids for g in groups]
    members = [m for g in groups for m in g.member_ids]
    row_group = torch.tensor([gi for gi, g in enumerate(groups) for _ in g.member_ids], dtype=torch.long)
    for clip, top_k in [(0.5, 5), (3.0, 20), (50.0, 400)]:
        settings = DecodeSettings(max_new_tokens=1, clip=clip, divisor=2, temperature=0.7, top_k=top_k,
                                  stop_token_ids=(), pad_token_id=0)
        with torch.inference_mode():
            full = RowBatchDecoder(model, 0).prefill(public + members)
            hidden = RowBatchDecoder(model, 0, hidden_only=True).prefill(public + members)
            aggregated, mask = private_step(full[len(public):], full[:len(public)], row_group, clip, 2, top_k)
            full_lp = masked_log_probs(aggregated, mask, 0.7)
            columns, sub_lp = restricted_log_probs(SplitHead(model), hidden, len(public), row_group, settings)
        assert torch.equal(mask.any(0).nonzero().squeeze(1), columns)  # the same candidate set
        assert torch.allclose(full_lp.index_select(1, columns), sub_lp, atol=1e-5, equal_nan=False)
        outside = torch.ones(full_lp.shape[1], dtype=torch.bool)
        outside[columns] = False
        assert torch.isinf(full_lp[:, outside]).all()  # nothing outside the columns can be sampled
        if top_k < full_lp.shape[1]:
            assert columns.numel() < full_lp.shape[1]  # and the product really is smaller


def test_restricted_and_full_engines_decode_the_same_tokens_greedily(tiny_model):
    model, tokenizer = tiny_model
    groups = _groups(tokenizer)
    outs = []
    for restrict in (True, False):
        settings = DecodeSettings(max_new_tokens=5, clip=2.0, divisor=2, temperature=1e-6, top_k=30,
                                  stop_token_ids=(), pad_token_id=0, restrict_private_logits=restrict)
        outs.append(decode_groups(model, groups, settings, generator=entropy_generator(), progress=False))
    assert outs[0] == outs[1]
