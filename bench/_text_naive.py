"""Naive baseline for the throughput benchmark: the research-code decoding loop.

Written for comparison only (never used by the library). It decodes the way the public research
code of private-prediction text generation does (InvisibleInk's ``generate.py`` layout):

* one group (one synthetic text) at a time;
* each step, ``model.generate(max_new_tokens=1, output_logits=True)`` on the group's B+1 rows
  (B private prompts + the public prompt, left-padded, all in one mini-batch), passing the KV
  cache of the previous call back in;
* the (B+1) x V logits copied to the host as float64 numpy, DClip + mean + Top-k+ mask +
  softmax in numpy, the token drawn with ``numpy.random.Generator.choice``.

The mechanism arithmetic is the same as the library's (clip around the public logits, divide
the clipped sum by the public B, Top-k+ set from public logits only, softmax at temperature
tau), so both decoders spend the same privacy for the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import special


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, length - len(row) :] = 1
    return ids, mask


def naive_decode_group(
    model: Any,
    public_ids: Sequence[int],
    member_ids: Sequence[Sequence[int]],
    *,
    clip: float,
    divisor: int,
    temperature: float,
    top_k: int,
    max_new_tokens: int,
    pad_token_id: int,
    stop_token_ids: Sequence[int],
    rng: np.random.Generator,
    nonprivate: bool = False,
) -> list[int]:
    """Generate one text for one group, token by token, the research-code way.

    ``nonprivate=True`` is the non-private reference of the utility benchmark: the mean of the
    members' unclipped logits, plain top-k sampling on it (``clip`` and the public row unused).
    """
    rows = [list(m) for m in member_ids] + [list(public_ids)]  # public prompt last
    prompts, masks = _left_pad(rows, pad_token_id)
    vocab = int(model.config.vocab_size)
    top_k = vocab if top_k <= 0 else min(top_k, vocab)
    cache = None
    generated: list[int] = []
    for _ in range(max_new_tokens):
        seq = torch.tensor(generated, dtype=torch.long).expand(len(rows), len(generated))
        input_ids = torch.cat([prompts, seq], dim=1)
        attention = torch.cat([masks, torch.ones_like(seq)], dim=1)
        output = model.generate(
            input_ids,
            attention_mask=attention,
            past_key_values=cache,
            use_cache=True,
            max_new_tokens=1,
            pad_token_id=pad_token_id,
            do_sample=True,
            temperature=temperature,
            top_k=vocab,
            top_p=1.0,
            output_logits=True,
            return_dict_in_generate=True,
        )
        logits = output.logits[0].float().cpu().numpy().astype(np.float64)
        cache = output.past_key_values
        public, private = logits[-1], logits[:-1]
        if nonprivate:
            mean = private.mean(axis=0)
            allowed = mean >= np.sort(mean)[-top_k]
            probs = special.softmax(np.where(allowed, mean / temperature, -np.inf))
            token = int(rng.choice(vocab, p=probs))
            generated.append(token)
            if token in stop_token_ids:
                break
            continue
        clipped = public + np.clip(private - public, -clip, clip)
        aggregated = public + (clipped - public).sum(axis=0) / divisor
        kth = np.sort(public)[-top_k]
        allowed = public >= kth - 2.0 * clip / divisor
        scores = np.where(allowed, aggregated / temperature, -np.inf)
        probs = special.softmax(scores)
        token = int(rng.choice(vocab, p=probs))
        generated.append(token)
        if token in stop_token_ids:
            break
    return generated


def naive_decode_groups(
    model: Any,
    groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    **kwargs: Any,
) -> list[list[int]]:
    """:func:`naive_decode_group` for each ``(public_ids, member_ids)`` in turn."""
    with torch.inference_mode():
        return [naive_decode_group(model, pub, members, **kwargs) for pub, members in groups]
