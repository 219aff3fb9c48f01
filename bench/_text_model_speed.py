"""``bench/text.py model-speed``: PE's public generation with another model against the default, in one process.

Both models write the same PE initial prompts (instruction and public label only) through the
library's decoding engine (:class:`dpsynth.text.pe.generator.EngineGenerator`), threads pinned.
Each model is loaded once (the load time, de-quantisation included when the cache is empty, is
printed) and warmed up once; then the timed calls alternate between the models (A B A B ...) so
that drift on a shared machine hits both, and the best time of each is kept. Prints each time and
the ratio against the default model (SmolLM2-135M-Instruct). Speed only: no private text is read.
"""

from __future__ import annotations

import argparse
import os
import time


def run_model_speed(args: argparse.Namespace, instruction: str, labels: list[str]) -> None:
    import torch

    from dpsynth.text.models import load_causal_lm
    from dpsynth.text.pe.generator import EngineGenerator
    from dpsynth.text.pe.variation import initial_message

    print(f"settings: {vars(args)}; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.2f}", flush=True)
    messages = [initial_message(instruction, label) for label in labels for _ in range(args.prompts // len(labels))]
    models = []
    for spec in (None, args.model):
        start = time.perf_counter()
        loaded = load_causal_lm(spec)
        loaded_in = time.perf_counter() - start
        generate = EngineGenerator(loaded, max_new_tokens=args.tokens, temperature=1.0, top_k=args.top_k,
                                   max_rows=args.max_rows, progress=False)
        generate(messages[: args.max_rows])  # warm-up
        vocab = tuple(loaded.model.get_output_embeddings().weight.shape)
        print(f"{loaded.name}: loaded in {loaded_in:.1f}s ({loaded.source}); output layer {vocab}", flush=True)
        models.append((loaded.name, generate, []))
    for _ in range(args.repeats):
        for name, generate, times in models:
            start = time.perf_counter()
            texts = generate(messages)
            times.append(time.perf_counter() - start)
            print(f"  {name}: {len(messages)} prompts x {args.tokens} tokens in {times[-1]:.1f}s; "
                  f"e.g. {texts[0][:80]!r}", flush=True)
    (base_name, _, base), (name, _, other) = models
    print(f"best: {base_name} {min(base):.1f}s, {name} {min(other):.1f}s; "
          f"ratio {name} / {base_name}: {min(other) / min(base):.2f}", flush=True)
