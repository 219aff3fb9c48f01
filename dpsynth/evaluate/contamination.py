"""Contamination checks: planted canaries, exact and near-duplicate overlap.

Privacy note: scanning outputs against private records or canaries reads private data; the
resulting numbers are not DP (``reads_private_data: true``) and must not be published or used to
filter the release (a filter that consults private data is itself a mechanism).

* **Canary** = an *in-distribution prefix* (the first words of a real-looking text) followed by a
  *rare suffix* of random uncommon words and a random number, so the suffix is essentially
  impossible to produce by chance. Canaries are drawn in pairs of roles: ``member=True`` canaries
  are planted into the private input (``repetitions`` copies each), ``member=False`` ones are
  never planted and serve as the audit's non-members (membership is a fair coin flip per canary).
* **Leak** = the whole suffix (normalised whitespace, case-insensitive) appears in an output.
* **Exact overlap** = an output equal to a record after normalisation (lower case, collapsed
  whitespace). **Near duplicate** = character 5-gram Jaccard similarity >= ``threshold``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from dpsynth.evaluate.errors import EvaluationInputError

RARE_WORDS = (
    "zephyr quokka marmalade obsidian fennel gazebo halcyon ibex juniper kumquat lorikeet mangrove "
    "nebula ocelot paprika quasar rhubarb saffron tamarind umbra vellum wombat xylem yarrow zither "
    "abalone bergamot cormorant dulcimer emu filigree gossamer hoopoe isotope jacaranda kelp lichen "
    "marzipan narwhal oregano pangolin quince rosemary sextant tapir ukulele vicuna walrus yuzu "
    "zeppelin anchovy bramble cobalt damask egret fjord garnet heron indigo jasper kiwi lupin "
    "mistral nutmeg opal parsnip quartz raven sorrel topaz urchin vanilla wasabi yak zinnia"
).split()


@dataclass(frozen=True)
class Canary:
    """One canary text; ``member`` says whether it is (to be) planted in the private input."""

    canary_id: str
    prefix: str
    suffix: str
    member: bool
    repetitions: int

    @property
    def text(self) -> str:
        """The full canary text (prefix + rare suffix)."""
        return f"{self.prefix} {self.suffix}".strip()


def normalise(text: str) -> str:
    """Lower case and collapse whitespace (the comparison form for overlap checks)."""
    return " ".join(str(text).lower().split())


def make_canaries(
    prefix_source: Sequence[str],
    count: int,
    seed: int | None = None,
    prefix_words: int = 6,
    suffix_words: int = 4,
    repetitions: int = 1,
) -> list[Canary]:
    """Draw ``count`` canaries; each is a member with probability 1/2, independently.

    Prefixes are the first ``prefix_words`` words of randomly chosen ``prefix_source`` texts
    (use public or in-distribution texts). Suffixes are ``suffix_words`` random rare words plus a
    random 6-digit number, unique per canary.
    """
    if count < 1:
        raise EvaluationInputError("count must be >= 1")
    if len(prefix_source) == 0:
        raise EvaluationInputError("need at least one text to draw canary prefixes from")
    if repetitions < 1:
        raise EvaluationInputError("repetitions must be >= 1")
    rng = np.random.default_rng(seed)
    canaries = []
    seen: set[str] = set()
    while len(canaries) < count:
        source = str(prefix_source[int(rng.integers(len(prefix_source)))])
        prefix = " ".join(source.split()[:prefix_words])
        words = [RARE_WORDS[int(i)] for i in rng.choice(len(RARE_WORDS), size=suffix_words, replace=False)]
        suffix = " ".join(words[:2] + [str(int(rng.integers(100000, 1000000)))] + words[2:])
        if suffix in seen:
            continue
        seen.add(suffix)
        canaries.append(Canary(f"canary-{len(canaries):05d}", prefix, suffix,
                               bool(rng.integers(2)), repetitions))
    return canaries


def plant_canaries(texts: Sequence[str], canaries: Sequence[Canary], seed: int | None = None) -> list[str]:
    """Return ``texts`` with every member canary inserted ``repetitions`` times at random places."""
    rng = np.random.default_rng(seed)
    out = list(texts)
    for canary in canaries:
        if canary.member:
            for _ in range(canary.repetitions):
                out.insert(int(rng.integers(len(out) + 1)), canary.text)
    return out


def save_canaries(path: str | Path, canaries: Sequence[Canary]) -> None:
    """Write canaries as JSON (this file is private: it says which canaries were planted), readable
    by its owner only (mode 0600) and atomically (temp file + rename)."""
    from dpsynth.atomic import atomic_write_text

    atomic_write_text(path, json.dumps([asdict(c) for c in canaries], indent=2))


def load_canaries(path: str | Path) -> list[Canary]:
    """Read canaries written by :func:`save_canaries`, with a clear error for malformed files."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Canary(str(r["canary_id"]), str(r["prefix"]), str(r["suffix"]), bool(r["member"]),
                       int(r.get("repetitions", 1))) for r in raw]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvaluationInputError(f"cannot read canary file {path}: {exc}") from exc


def scan_for_canaries(outputs: Sequence[str], canaries: Sequence[Canary]) -> dict[str, Any]:
    """Count canaries whose rare suffix appears verbatim in any output.

    Returns ``{"planted": n_members, "leaked_members": k, "leaked_non_members": j,
    "leaked_ids": [...]}``; a leaked non-member would mean a broken canary design.
    """
    corpus = "\n".join(normalise(t) for t in outputs)
    leaked = [c for c in canaries if normalise(c.suffix) in corpus]
    return {"planted": sum(c.member for c in canaries),
            "leaked_members": sum(c.member for c in leaked),
            "leaked_non_members": sum(not c.member for c in leaked),
            "leaked_ids": [c.canary_id for c in leaked if c.member]}


def exact_overlap(outputs: Sequence[str], records: Sequence[str]) -> dict[str, Any]:
    """Share of outputs equal (after :func:`normalise`) to some record."""
    if len(outputs) == 0:
        raise EvaluationInputError("no outputs to scan")
    record_set = {normalise(r) for r in records}
    hits = [i for i, t in enumerate(outputs) if normalise(t) in record_set]
    return {"rate": len(hits) / len(outputs), "count": len(hits), "indices": hits[:50]}


def _shingle_matrix(texts: Sequence[str], n: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(analyzer="char", ngram_range=(n, n), n_features=2 ** 22,
                                   alternate_sign=False, norm=None, binary=True, lowercase=True)
    return vectorizer.transform([normalise(t) for t in texts]).tocsr()


def max_jaccard(outputs: Sequence[str], records: Sequence[str], n: int = 5, chunk: int = 512) -> np.ndarray:
    """For each output, the largest character n-gram Jaccard similarity to any record."""
    if len(outputs) == 0 or len(records) == 0:
        raise EvaluationInputError("need outputs and records to compare")
    out_m, rec_m = _shingle_matrix(outputs, n), _shingle_matrix(records, n)
    out_sizes = np.asarray(out_m.sum(axis=1)).ravel()
    rec_sizes = np.asarray(rec_m.sum(axis=1)).ravel()
    best = np.zeros(len(outputs))
    rec_t = rec_m.T.tocsc()
    chunk = max(1, min(chunk, 20_000_000 // max(1, len(records))))  # bound the dense block's memory
    for start in range(0, len(outputs), chunk):
        inter = (out_m[start:start + chunk] @ rec_t).toarray()
        union = out_sizes[start:start + chunk, None] + rec_sizes[None, :] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            jac = np.where(union > 0, inter / union, 0.0)
        best[start:start + chunk] = jac.max(axis=1)
    return best


def near_duplicates(
    outputs: Sequence[str], records: Sequence[str], threshold: float = 0.8, n: int = 5
) -> dict[str, Any]:
    """Share of outputs whose best character n-gram Jaccard to a record is >= ``threshold``."""
    best = max_jaccard(outputs, records, n=n)
    hits = np.flatnonzero(best >= threshold)
    return {"rate": float(len(hits) / len(outputs)), "count": int(len(hits)), "threshold": threshold,
            "mean_max_jaccard": float(best.mean()), "indices": [int(i) for i in hits[:50]]}


def exact_row_overlap(synthetic: pd.DataFrame, real: pd.DataFrame) -> dict[str, Any]:
    """Share of synthetic rows identical to some real row (all columns, values compared as text)."""
    if len(synthetic) == 0:
        raise EvaluationInputError("no synthetic rows to scan")
    columns = list(real.columns)
    as_text = lambda df: df[columns].astype("string").fillna("<NA>").agg("\x1f".join, axis=1)  # noqa: E731
    real_rows = set(as_text(real))
    hits = as_text(synthetic).isin(real_rows).to_numpy()
    return {"rate": float(hits.mean()), "count": int(hits.sum())}
