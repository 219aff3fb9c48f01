"""Loading tables and text corpora for evaluation, with clear errors for bad input.

Tables: ``.csv`` (and ``.parquet`` / ``.jsonl`` when given). Texts: ``.jsonl`` (one JSON object
per line with a text field, or one JSON string per line), ``.json`` (a list of objects or
strings), ``.txt`` (one text per line) or ``.csv`` (a text column).

:class:`EvaluationInputError` (re-exported here) lives in :mod:`dpsynth.evaluate.errors`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.evaluate.errors import EvaluationInputError

TEXT_SUFFIXES = {".jsonl", ".json", ".txt"}


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise EvaluationInputError(f"file not found: {path}")
    if not path.is_file():
        raise EvaluationInputError(f"not a file: {path}")
    return path


def looks_like_text(path: str | Path) -> bool:
    """True when the file extension indicates a text corpus (``.jsonl``, ``.json``, ``.txt``)."""
    return Path(path).suffix.lower() in TEXT_SUFFIXES


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a table, raising :class:`EvaluationInputError` for missing, empty or malformed files."""
    path = _existing(path)
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix.lower() == ".jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise EvaluationInputError(f"{path} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise EvaluationInputError(f"cannot parse {path} as a table: {exc}") from exc
    if len(frame) == 0 or len(frame.columns) == 0:
        raise EvaluationInputError(f"{path} has no rows")
    return frame


def records_from_json(path: Path) -> list[Any]:
    """The records of a ``.json`` list (or ``{"records"|"texts"|"data": [...]}``) or ``.jsonl`` file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            for key in ("records", "texts", "data"):
                if isinstance(data.get(key), list):
                    return data[key]
            raise EvaluationInputError(f"{path}: expected a JSON list of records")
        if not isinstance(data, list):
            raise EvaluationInputError(f"{path}: expected a JSON list of records")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise EvaluationInputError(f"{path}, line {number}: invalid JSON ({exc.msg})") from exc
    return records


def load_texts(
    path: str | Path, text_field: str = "text", label_field: str | None = None
) -> tuple[list[str], list[Any] | None]:
    """Read a text corpus; returns ``(texts, labels or None)``. Labels are required when asked for."""
    path = _existing(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if label_field:
                raise EvaluationInputError(f"{path}: a .txt corpus has no labels ({label_field!r})")
            labels = None
        elif suffix in (".jsonl", ".json"):
            records = records_from_json(path)
            texts, labels_list = [], []
            for i, record in enumerate(records):
                if isinstance(record, str):
                    if label_field:
                        raise EvaluationInputError(f"{path}: record {i} has no {label_field!r} field")
                    texts.append(record)
                    continue
                if not isinstance(record, dict) or text_field not in record:
                    raise EvaluationInputError(f"{path}: record {i} has no {text_field!r} field")
                texts.append(str(record[text_field]))
                if label_field:
                    if label_field not in record:
                        raise EvaluationInputError(f"{path}: record {i} has no {label_field!r} field")
                    labels_list.append(record[label_field])
            labels = labels_list if label_field else None
        else:
            frame = load_table(path)
            if text_field not in frame.columns:
                raise EvaluationInputError(f"{path}: no column {text_field!r} (columns: {list(frame.columns)})")
            texts = frame[text_field].astype(str).tolist()
            if label_field:
                if label_field not in frame.columns:
                    raise EvaluationInputError(f"{path}: no column {label_field!r}")
                labels = frame[label_field].tolist()
            else:
                labels = None
    except UnicodeDecodeError as exc:
        raise EvaluationInputError(f"{path} is not UTF-8 text") from exc
    if not texts:
        raise EvaluationInputError(f"{path} contains no texts")
    return texts, labels


__all__ = ["EvaluationInputError", "TEXT_SUFFIXES", "load_table", "load_texts", "looks_like_text", "records_from_json"]
