"""Non-private reference decoder for the utility benchmark (never used by the library).

Each group of exactly B private prompts generates one text from the MEAN of its members'
unclipped next-token logits, with plain top-k sampling on that mean -- the same ensemble-of-
prompts generation as the DP mechanism without clipping, public centring or privacy. Uses the
library's batched KV-cached :class:`dpsynth.text.engine.RowBatchDecoder`, so its cost is
comparable to the DP runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dpsynth.text.engine import RowBatchDecoder


def nonprivate_decode(
    model: Any,
    groups: Sequence[Sequence[Sequence[int]]],
    *,
    temperature: float,
    top_k: int,
    max_new_tokens: int,
    pad_token_id: int,
    stop_token_id: int,
    seed: int = 0,
    max_rows: int = 64,
) -> list[list[int]]:
    """One token list per group (members' prompt token ids), stop token excluded."""
    generator = torch.Generator().manual_seed(seed)
    results: list[list[int]] = []
    per_chunk = max(1, max_rows // max(len(g) for g in groups))
    with torch.inference_mode():
        for start in range(0, len(groups), per_chunk):
            chunk = groups[start : start + per_chunk]
            rows = [list(m) for g in chunk for m in g]
            row_group = torch.tensor([gi for gi, g in enumerate(chunk) for _ in g], dtype=torch.long)
            counts = torch.bincount(row_group, minlength=len(chunk)).clamp(min=1).float().unsqueeze(1)
            decoder = RowBatchDecoder(model, pad_token_id)
            logits = decoder.prefill(rows)
            out = [[] for _ in chunk]
            done = [False] * len(chunk)
            for _ in range(max_new_tokens):
                mean = torch.zeros((len(chunk), logits.shape[-1]))
                mean.index_add_(0, row_group, logits.float().cpu())
                mean /= counts
                values, indices = torch.topk(mean / temperature, top_k, dim=-1)
                choice = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=generator).squeeze(1)
                tokens = indices.gather(1, choice.unsqueeze(1)).squeeze(1)
                for gi, token in enumerate(tokens.tolist()):
                    if not done[gi]:
                        if token == stop_token_id:
                            done[gi] = True
                        else:
                            out[gi].append(token)
                if all(done):
                    break
                logits = decoder.step(tokens.index_select(0, row_group))
            results.extend(out)
    return results
