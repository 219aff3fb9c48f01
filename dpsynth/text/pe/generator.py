"""The public model as a batch text generator for Private Evolution (reuses the decoding engine).

Each prompt becomes one group *without members* in :func:`dpsynth.text.engine.decode_groups`:
with no private rows the aggregate equals the public logits, so this is plain top-k sampling
from the public model, batched with the engine's KV cache and shared-prefix prefill. Only public
prompts (instruction, public labels, public candidates) are ever passed in.

``decode`` (optional) replaces the in-process decoding, e.g. with Ray actors
(:func:`dpsynth.text.ray_backend.public_decoder`): they receive these public prompts only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    def __call__(self, messages: list[str], description: str = "PE generation") -> list[str]:
        tokenizer = self.loaded.tokenizer
        groups = [GroupPrompts(message_ids(tokenizer, m), []) for m in messages]
        if self.decode is not None:
            decoded = self.decode(groups, self.settings)
        else:
            device = model_device(self.loaded.model)
            decoded = decode_groups(
                self.loaded.model, groups, self.settings, generator=secret_torch_generator(device),
                progress=self.progress, desc=description,
            )
        return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in decoded]
