"""Pure functions of one Private Evolution iteration: votes, noisy histogram, threshold, selection.

Privacy unit: one private text. :func:`nearest_candidates` and :func:`vote_histogram` are the
only functions that read private data (the private embeddings); every private text casts exactly
one vote, for its nearest candidate of its own label -- a function of that text and the public
candidates only -- so adding or removing one text changes exactly one count by one (L2
sensitivity 1; proof in :mod:`dpsynth.text.pe.privacy`).

Vote spaces (public setting, :data:`VOTE_SPACES`):

* ``"centred"`` (default): cosine after subtracting the mean of the label's (unit) candidate
  embeddings from both sides. The mean is a function of the public candidates only. It removes
  what all candidates share -- the public model's own style -- so a private text votes for the
  candidate whose *departure from the pool* points its way, instead of for the "hub" candidates
  nearest to every text (measured: docs/text-bench.md, issue 10 sixth round);
* ``"raw"``: plain cosine (the rule before that measurement).

:func:`noisy_histogram` adds the Gaussian noise from a generator the caller draws from
:mod:`dpsynth.randomness`; everything after it (:func:`threshold_counts`,
:func:`select_proportional`, :func:`select_top`) is post-processing of the noisy histogram and
public candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

#: rows of private embeddings compared against the candidates at once (bounds memory)
VOTE_CHUNK_ROWS = 4096
#: where similarities are measured (module docstring)
VOTE_SPACES = ("centred", "raw")
DEFAULT_VOTE_SPACE = "centred"


def check_vote_space(space: str) -> str:
    """``space`` validated against :data:`VOTE_SPACES` (a public setting)."""
    if space not in VOTE_SPACES:
        raise ValueError(f"vote space must be one of {', '.join(VOTE_SPACES)}; got {space!r}")
    return space


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def nearest_candidates(
    private_embeddings: np.ndarray,
    private_groups: np.ndarray,
    candidate_embeddings: np.ndarray,
    candidate_groups: np.ndarray,
    space: str = DEFAULT_VOTE_SPACE,
) -> np.ndarray:
    """Index of each private row's nearest candidate among candidates of its own group.

    Nearest by cosine in ``space`` (module docstring): for ``"centred"`` both sides are
    unit-normalised and the mean of the group's unit candidate embeddings is subtracted first.
    ``private_groups`` / ``candidate_groups`` are integer label ids. A row whose group has no
    candidate gets ``-1`` (it votes for nothing). Ties go to the lowest candidate index, so a
    row's vote depends only on that row and the candidates.
    """
    check_vote_space(space)
    if np.asarray(private_embeddings).size == 0 and len(private_groups) == 0:
        return np.zeros(0, dtype=np.int64)  # no private text: no vote (any width)
    priv = _unit_rows(private_embeddings)
    cand = _unit_rows(candidate_embeddings)
    if priv.shape[1] != cand.shape[1]:
        raise ValueError("private and candidate embeddings have different widths")
    private_groups = np.asarray(private_groups, dtype=np.int64)
    candidate_groups = np.asarray(candidate_groups, dtype=np.int64)
    out = np.full(priv.shape[0], -1, dtype=np.int64)
    for group in np.unique(private_groups):
        rows = np.flatnonzero(private_groups == group)
        cols = np.flatnonzero(candidate_groups == group)
        if cols.size == 0:
            continue
        group_candidates = cand[cols]
        centre = group_candidates.mean(axis=0) if space == "centred" else np.zeros(cand.shape[1])
        # the private side's norm does not change its argmax, so only the candidates are re-normalised
        group_candidates = _unit_rows(group_candidates - centre)
        for start in range(0, rows.size, VOTE_CHUNK_ROWS):
            part = rows[start:start + VOTE_CHUNK_ROWS]
            similarity = (priv[part] - centre) @ group_candidates.T
            out[part] = cols[np.argmax(similarity, axis=1)]  # argmax: first maximum on ties
    return out


def vote_histogram(nearest: np.ndarray, num_candidates: int) -> np.ndarray:
    """Vote counts per candidate (length ``num_candidates``); ``-1`` entries cast no vote."""
    nearest = np.asarray(nearest, dtype=np.int64)
    valid = nearest[nearest >= 0]
    if valid.size and valid.max() >= num_candidates:
        raise ValueError("a vote names a candidate index out of range")
    return np.bincount(valid, minlength=num_candidates).astype(np.float64)


def noisy_histogram(counts: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """``counts + N(0, noise_std^2)`` per coordinate (the Gaussian mechanism of one iteration).

    ``rng`` must come from :func:`dpsynth.randomness.secret_numpy_rng` (tests may pass a seeded
    generator to check the distribution).
    """
    if not noise_std > 0:
        raise ValueError("noise_std must be > 0")
    counts = np.asarray(counts, dtype=np.float64)
    return counts + rng.normal(0.0, float(noise_std), size=counts.shape)


def threshold_counts(noisy: np.ndarray, threshold: float) -> np.ndarray:
    """Noisy counts with every value below ``threshold`` set to 0 (post-processing)."""
    noisy = np.asarray(noisy, dtype=np.float64)
    return np.where(noisy >= threshold, np.maximum(noisy, 0.0), 0.0)


def _select_per_group(
    weights: np.ndarray,
    candidate_groups: np.ndarray,
    per_group: Mapping[int, int],
    pick: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
) -> np.ndarray:
    """Concatenate ``pick(cols, weights[cols], count)`` over the groups of ``per_group`` in order,
    where ``cols`` are the candidate indices of the group (a group without candidates is an error)."""
    weights = np.asarray(weights, dtype=np.float64)
    candidate_groups = np.asarray(candidate_groups, dtype=np.int64)
    chosen: list[np.ndarray] = []
    for group, count in per_group.items():
        cols = np.flatnonzero(candidate_groups == group)
        if cols.size == 0:
            raise ValueError(f"group {group} has no candidates")
        chosen.append(pick(cols, weights[cols], int(count)))
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def select_proportional(
    weights: np.ndarray,
    candidate_groups: np.ndarray,
    per_group: Mapping[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``per_group[g]`` candidate indices of group ``g`` with probability proportional to
    ``weights`` (with replacement); uniform over the group when all its weights are 0."""

    def pick(cols: np.ndarray, w: np.ndarray, count: int) -> np.ndarray:
        p = w / w.sum() if w.sum() > 0 else np.full(cols.size, 1.0 / cols.size)
        return cols[rng.choice(cols.size, size=count, replace=True, p=p)]

    return _select_per_group(weights, candidate_groups, per_group, pick)


def select_top(
    weights: np.ndarray,
    candidate_groups: np.ndarray,
    per_group: Mapping[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """The ``per_group[g]`` highest-weight candidates of group ``g`` (random tie order; repeats the
    ranking when a group has fewer candidates than asked)."""

    def pick(cols: np.ndarray, w: np.ndarray, count: int) -> np.ndarray:
        jitter = rng.random(cols.size)
        return np.resize(cols[np.lexsort((jitter, -w))], count)

    return _select_per_group(weights, candidate_groups, per_group, pick)
