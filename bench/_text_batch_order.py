"""Batching order of PE's public generation, for the ``batch-order`` benchmark (issue 10 §1 compute).

One PE variation round is rebuilt from public corpus texts standing in for the candidates (each
cut to ``--tokens`` tokens, as a candidate the public model wrote would be): ``--candidates``
candidates, half per label, ``--variations`` prompts each through the library's
:class:`dpsynth.text.pe.variation.VariationPlan`. The same prompts are then decoded with
:func:`dpsynth.text.engine.decode_groups` in three orders, interleaved over ``--repeats``:

* ``input``: the order the evolution loop builds them (before :func:`batch_order` existed);
* ``length``: :func:`dpsynth.text.pe.generator.batch_order` without keys (shortest first);
* ``label+kind``: ``batch_order`` with the (label, variation kind) keys the loop now passes.

Per order: prefill tokens actually computed (the shared prefix once per batch plus every row's
left-padded rest), prefill seconds, total seconds, and the ratio of total time against ``input``
in the same process. The sampled tokens differ between runs, so decode time carries noise
from how long the generations are; the prefill token count does not.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def prefill_tokens(rows: list[list[int]], order: list[int], max_rows: int) -> int:
    """Tokens the engine's prefill computes for ``rows`` decoded in ``order`` in batches of ``max_rows``."""
    from dpsynth.text.engine import common_prefix_length

    total = 0
    for start in range(0, len(order), max_rows):
        batch = [rows[i] for i in order[start:start + max_rows]]
        shared = common_prefix_length(batch) if len(batch) > 1 else 0
        total += shared + len(batch) * max(len(r) - shared for r in batch)
    return total


def run_batch_order(args, loaded, split, instruction: str) -> None:
    from dpsynth.text.engine import DecodeSettings, GroupPrompts, RowBatchDecoder, decode_groups, pad_token_id, stop_token_ids
    from dpsynth.text.pe.generator import batch_order, message_ids
    from dpsynth.text.pe.variation import VariationPlan

    tok = loaded.tokenizer
    labels = sorted(set(split.train_labels))
    per_label = args.candidates // len(labels)
    candidates, candidate_labels = [], []
    for lab in labels:
        texts = [t for t, y in zip(split.train_texts, split.train_labels) if y == lab][:per_label]
        for text in texts:
            candidates.append(tok.decode(tok(text, add_special_tokens=False)["input_ids"][: args.tokens]).strip())
            candidate_labels.append(lab)
    prompts, source, kinds = VariationPlan(instruction).messages(
        candidates, candidate_labels, args.variations, np.random.default_rng(args.seed)
    )
    rows = [message_ids(tok, m) for m in prompts]
    keys = [(candidate_labels[s], kind) for s, kind in zip(source, kinds)]
    orders = {
        "input": list(range(len(rows))),
        "length": batch_order(rows),
        "label+kind": batch_order(rows, keys),
    }
    real = sum(len(r) for r in rows)
    print(f"batch-order: {len(rows)} prompts ({len(candidates)} candidates x {args.variations}), {real} prompt tokens "
          f"(mean {real / len(rows):.1f}), max_rows={args.max_rows}, T={args.tokens}, top-k={args.top_k}, "
          f"torch threads={torch.get_num_threads()}", flush=True)
    for name, order in orders.items():
        computed = prefill_tokens(rows, order, args.max_rows)
        print(f"  {name:>10}: prefill computes {computed} tokens ({computed / real:.2f} of the prompt tokens)", flush=True)

    settings = DecodeSettings(
        max_new_tokens=args.tokens, clip=0.0, divisor=1, temperature=1.0, top_k=args.top_k,
        stop_token_ids=stop_token_ids(tok, loaded.model), pad_token_id=pad_token_id(tok), max_rows=args.max_rows,
    )
    clock = {"prefill": 0.0}
    prefill = RowBatchDecoder.prefill

    def timed_prefill(self, batch, share_prefix=True):
        start = time.perf_counter()
        try:
            return prefill(self, batch, share_prefix)
        finally:
            clock["prefill"] += time.perf_counter() - start

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in orders}
    RowBatchDecoder.prefill = timed_prefill
    try:
        for repeat in range(args.repeats):
            for name, order in orders.items():
                clock["prefill"] = 0.0
                start = time.perf_counter()
                out = decode_groups(loaded.model, [GroupPrompts(rows[i], []) for i in order], settings,
                                    generator=torch.Generator().manual_seed(args.seed + repeat), progress=False)
                total = time.perf_counter() - start
                times[name].append((clock["prefill"], total))
                print(f"  repeat {repeat} {name:>10}: total {total:.1f}s, prefill {clock['prefill']:.1f}s, "
                      f"{sum(len(o) for o in out)} tokens generated", flush=True)
    finally:
        RowBatchDecoder.prefill = prefill
    base = np.mean([t for _, t in times["input"]])
    base_prefill = np.mean([p for p, _ in times["input"]])
    for name, runs in times.items():
        total = np.mean([t for _, t in runs])
        pre = np.mean([p for p, _ in runs])
        print(f"{name:>10}: total {total:.1f}s ({total / base:.3f} of input), prefill {pre:.1f}s "
              f"({pre / base_prefill:.3f} of input)", flush=True)
