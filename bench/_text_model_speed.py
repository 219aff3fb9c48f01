"""``bench/text.py model-speed``: PE's public generation with another model against the default, in one process.

Both models write the same PE initial prompts (instruction and public label only) through the
library's decoding engine (:class:`dpsynth.text.pe.generator.EngineGenerator`), threads pinned;
each model gets one warm-up call, then ``--repeats`` timed calls, and the best time is kept. Prints
each time and the ratio against the default model (SmolLM2-135M-Instruct). Speed only: no
private text is read.
"""

from __future__ import annotations

import argparse
import time


def run_model_speed(args: argparse.Namespace, instruction: str, labels: list[str]) -> None:
    from dpsynth.text.models import load_causal_lm
    from dpsynth.text.pe.generator import EngineGenerator
    from dpsynth.text.pe.variation import initial_message

    messages = [initial_message(instruction, label) for label in labels for _ in range(args.prompts // len(labels))]
    results = []
    for spec in (None, args.model):
        start = time.perf_counter()
        loaded = load_causal_lm(spec)
        loaded_in = time.perf_counter() - start
        generate = EngineGenerator(loaded, max_new_tokens=args.tokens, temperature=1.0, top_k=args.top_k,
                                   max_rows=args.max_rows, progress=False)
        generate(messages[: args.max_rows])  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            texts = generate(messages)
            times.append(time.perf_counter() - start)
        vocab = loaded.model.get_output_embeddings().weight.shape
        results.append((loaded.name, min(times)))
        print(f"{loaded.name}: loaded in {loaded_in:.1f}s; {len(messages)} prompts x {args.tokens} tokens: "
              f"best {min(times):.1f}s of {[round(t, 1) for t in times]}; output layer {tuple(vocab)}; "
              f"e.g. {texts[0][:100]!r}", flush=True)
    (base_name, base), (name, other) = results
    print(f"ratio {name} / {base_name}: {other / base:.2f}")
