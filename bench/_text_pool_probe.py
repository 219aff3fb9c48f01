"""How the public model's sampling shapes the pool PE selects from (``bench/text.py pool-probe``).

For each (temperature, top-k) setting: ``--pool-per-label`` candidates per label from PE's initial
prompt (public), then three selections of ``--per-label`` texts per label, scored against the real
held-out texts: ``random`` (no selection), ``oracle top`` (the highest EXACT nearest-neighbour vote
counts of the private texts -- no noise, not private: the best any vote-based selection of this
pool can do) and ``oracle prop`` (draws proportional to those exact counts). No DP release is made;
this measures the pool, not the mechanism.

``--label-phrases FILE`` (JSON, label -> sentence) replaces the library's label line ("The text
must be {label}.") in the initial prompt with the caller's sentence for that label: a screen of
per-label wording (public metadata), not a library option.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def run_pool_probe(args, loaded, instruction: str, split, labels: list[str]) -> None:
    from _text_eval import MiniLMEmbedder, evaluate

    from dpsynth.evaluate.text_metrics import embedding_coverage, mauve_score
    from dpsynth.text.pe.generator import EngineGenerator
    from dpsynth.text.pe.histogram import nearest_candidates, select_proportional, select_top
    from dpsynth.text.pe.variation import initial_message, tidy

    phrases = json.loads(Path(args.label_phrases).read_text()) if args.label_phrases else None
    missing = sorted(set(labels) - set(labels if phrases is None else phrases))
    if missing:
        raise SystemExit(f"{args.label_phrases} has no sentence for labels {missing}")
    evaluator = MiniLMEmbedder()
    test_embeddings = evaluator(split.test_texts)
    private_embeddings = evaluator(list(split.train_texts))
    private_groups = np.asarray([labels.index(y) for y in split.train_labels])
    rng = np.random.default_rng(args.seed)
    per_group = {g: args.per_label for g in range(len(labels))}

    def prompt(label: str) -> str:
        if phrases is None:
            return initial_message(instruction, label)
        return initial_message(f"{instruction.strip()}\n{phrases[label]}", None)  # the library's prompt, caller's label line

    print(f"initial prompt ({labels[0]}): {prompt(labels[0])!r}", flush=True)
    for setting in args.settings:
        temperature, top_k = float(setting.split(":")[0]), int(setting.split(":")[1])
        generate = EngineGenerator(loaded, max_new_tokens=args.tokens, temperature=temperature, top_k=top_k,
                                   max_rows=64, progress=False)
        start = time.perf_counter()
        groups = np.asarray([g for g in range(len(labels)) for _ in range(args.pool_per_label)])
        pool = [tidy(t) for t in generate([prompt(labels[g]) for g in groups])]
        seconds = time.perf_counter() - start
        pool_embeddings = evaluator(pool)
        nearest = nearest_candidates(private_embeddings, private_groups, pool_embeddings, groups, args.vote_space)
        counts = np.bincount(nearest, minlength=len(pool)).astype(float)
        random = np.concatenate([rng.choice(np.flatnonzero(groups == g), args.per_label, replace=False)
                                 for g in per_group])
        for name, chosen in (("random", random), ("oracle top", select_top(counts, groups, per_group, rng)),
                             ("oracle prop", select_proportional(counts, groups, per_group, rng))):
            texts = [pool[i] for i in chosen]
            acc = evaluate(evaluator, texts, [labels[groups[i]] for i in chosen], split.test_texts,
                           split.test_labels, test_embeddings)
            mauve = mauve_score(test_embeddings, pool_embeddings[chosen])["mauve"]
            coverage = embedding_coverage(test_embeddings, pool_embeddings[chosen])
            print(f"tau={temperature:g} top_k={top_k} {name:>11}: MiniLM {acc.minilm:.3f}  MAUVE {mauve:.3f}  "
                  f"coverage {coverage:.3f}  words {np.mean([len(t.split()) for t in texts]):.1f}  "
                  f"({seconds:.0f}s to write the pool)", flush=True)
        print(f"    e.g. {pool[int(random[0])][:100]!r}", flush=True)
