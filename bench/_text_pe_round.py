"""One PE variation round's public generation, for the ``pe-round`` benchmark (issue 10 §1 compute).

One PE variation round is rebuilt from public corpus texts standing in for the candidates (each
cut to ``--tokens`` tokens, as a candidate the public model wrote would be): ``--candidates``
candidates, half per label, ``--variations`` prompts each through the library's
:class:`dpsynth.text.pe.variation.VariationPlan`. The same prompts are then decoded with
:func:`dpsynth.text.engine.decode_groups` in each (order, KV cache) variant, interleaved over
``--repeats``:

* order ``input``: the order the evolution loop builds them (before :func:`batch_order` existed);
  ``label+kind``: :func:`dpsynth.text.pe.generator.batch_order` with the (label, variation kind)
  keys the loop now passes; ``length`` (prefill token count only): ``batch_order`` without keys;
* cache ``dynamic``: transformers' ``DynamicCache`` (``torch.cat`` of the whole cache at every
  step: the engine before :mod:`dpsynth.text.kv_cache`); ``reserved``: the engine's cache now.

Per order, the prefill tokens actually computed (the shared prefix once per batch plus every
row's left-padded rest). Per variant: prefill seconds, total seconds, and the ratio of total
time against ``input/dynamic`` (the engine before both changes) in the same process. Repeat
``r`` of every variant samples with the same seed, so variants with the same order decode the
same tokens and differ in time by the cache alone.
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


#: (order, cache) variants timed, the first being the baseline
VARIANTS = (("input", "dynamic"), ("input", "reserved"), ("label+kind", "dynamic"), ("label+kind", "reserved"))


def run_pe_round(args, loaded, split, instruction: str) -> None:
    from transformers import DynamicCache

    import dpsynth.text.engine as engine
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
    print(f"pe-round: {len(rows)} prompts ({len(candidates)} candidates x {args.variations}), {real} prompt tokens "
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

    variants = list(VARIANTS) if not args.variants else [tuple(v.split("/")) for v in args.variants]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {['/'.join(v) for v in VARIANTS]}")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {v: [] for v in variants}
    reserved_cache = engine.new_cache
    RowBatchDecoder.prefill = timed_prefill
    try:
        for repeat in range(args.repeats):
            for order_name, cache in variants:
                engine.new_cache = reserved_cache if cache == "reserved" else (lambda capacity: DynamicCache())
                order = orders[order_name]
                clock["prefill"] = 0.0
                start = time.perf_counter()
                out = decode_groups(loaded.model, [GroupPrompts(rows[i], []) for i in order], settings,
                                    generator=torch.Generator().manual_seed(args.seed + repeat), progress=False)
                total = time.perf_counter() - start
                times[(order_name, cache)].append((clock["prefill"], total))
                print(f"  repeat {repeat} {order_name:>10}/{cache:<8}: total {total:.1f}s, prefill "
                      f"{clock['prefill']:.1f}s, {sum(len(o) for o in out)} tokens generated", flush=True)
    finally:
        RowBatchDecoder.prefill = prefill
        engine.new_cache = reserved_cache
    base = np.mean([t for _, t in times[variants[0]]])
    base_prefill = np.mean([p for p, _ in times[variants[0]]])
    for (order_name, cache), runs in times.items():
        total = np.mean([t for _, t in runs])
        pre = np.mean([p for p, _ in runs])
        print(f"{order_name:>10}/{cache:<8}: total {total:.1f}s ({total / base:.3f} of {'/'.join(variants[0])}), "
              f"prefill {pre:.1f}s ({pre / base_prefill:.3f}), decode and sampling {total - pre:.1f}s", flush=True)
