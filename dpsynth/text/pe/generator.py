"""The public model as a batch text generator for Private Evolution (reuses the decoding engine).

Each prompt becomes one group *without members* in :func:`dpsynth.text.engine.decode_groups`:
with no private rows the aggregate equals the public logits, so this is plain top-k sampling
from the public model, batched with the engine's KV cache and shared-prefix prefill. Only public
prompts (instruction, public labels, public candidates) are ever passed in.

``decode`` (optional) replaces the in-process decoding, e.g. with Ray actors
(:func:`dpsynth.text.ray_backend.public_decoder`): they receive these public prompts only.

Batching order (speed only): the prompts are decoded in :func:`batch_order` -- grouped by the
caller's public ``batch_keys`` (PE passes each prompt's label and variation kind, so a batch
shares the prompt text up to the candidate and :meth:`RowBatchDecoder.prefill` runs that prefix
once), shortest first within a group (less left padding) -- and the texts are returned in the
input order. Each prompt is still sampled independently from the same distribution, so the
order changes run time, not what the output can be. It is public post-processing: the keys and
lengths are those of public prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from dpsynth.randomness import secret_torch_generator
from dpsynth.text.engine import DecodeSettings, GroupPrompts, decode_groups, model_device, pad_token_id, stop_token_ids
from dpsynth.text.prompts import render


def message_ids(tokenizer: Any, message: str) -> list[int]:
    """Token ids of ``message`` rendered with the chat template (BOS added once when the tokenizer uses one)."""
    ids = list(tokenizer(render(tokenizer, message), add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    if bos is not None and probe and probe[0] == bos and ids[:1] != [bos]:
        ids = [bos] + ids
    return ids


def batch_order(rows: Sequence[Sequence[int]], keys: Sequence[Hashable] | None = None) -> list[int]:
    """Indices of ``rows`` grouped by ``keys`` (first appearance order), shortest row first within a key.

    Stable: rows of equal key and length keep their input order. ``keys`` defaults to one key
    for all rows (a pure length sort). Public rows and keys only.
    """
    if keys is None:
        keys = [None] * len(rows)
    if len(keys) != len(rows):
        raise ValueError(f"{len(keys)} batch keys for {len(rows)} prompts")
    first: dict[Hashable, int] = {}
    for key in keys:
        first.setdefault(key, len(first))
    return sorted(range(len(rows)), key=lambda i: (first[keys[i]], len(rows[i])))


#: ``decode(groups, settings) -> token ids per group``: a replacement for in-process decoding
PublicDecode = Callable[[Sequence[GroupPrompts], DecodeSettings], list[list[int]]]


class EngineGenerator:
    """``generator(messages, description) -> texts``: one sampled completion per user message."""

    def __init__(
        self, loaded: Any, *, max_new_tokens: int, temperature: float, top_k: int, max_rows: int, progress: bool,
        decode: PublicDecode | None = None,
    ) -> None:
        self.loaded = loaded
        self.progress = progress
        self.decode = decode
        self.settings = DecodeSettings(
            max_new_tokens=max_new_tokens,
            clip=0.0,
            divisor=1,
            temperature=temperature,
            top_k=top_k,
            stop_token_ids=stop_token_ids(loaded.tokenizer, loaded.model),
            pad_token_id=pad_token_id(loaded.tokenizer),
            max_rows=max_rows,
        )

    def __call__(
        self, messages: list[str], description: str = "PE generation", batch_keys: Sequence[Hashable] | None = None
    ) -> list[str]:
        """One completion per message, in input order; ``batch_keys`` (public) steer :func:`batch_order`."""
        tokenizer = self.loaded.tokenizer
        rows = [message_ids(tokenizer, m) for m in messages]
        order = batch_order(rows, batch_keys)
        groups = [GroupPrompts(rows[i], []) for i in order]
        if self.decode is not None:
            decoded = self.decode(groups, self.settings)
        else:
            device = model_device(self.loaded.model)
            decoded = decode_groups(
                self.loaded.model, groups, self.settings, generator=secret_torch_generator(device),
                progress=self.progress, desc=description,
            )
        texts = [""] * len(messages)
        for position, index in enumerate(order):
            texts[index] = tokenizer.decode(decoded[position], skip_special_tokens=True).strip()
        return texts
