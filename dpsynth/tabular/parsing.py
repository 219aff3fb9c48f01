"""Reading a CSV as text, and the public per-value parse rules every row goes through.

Privacy unit: one row. Nothing here decides anything *about the table* from its values: a CSV is
read as text (``dtype=str``), so no storage type is inferred from the data (pandas' inference is a
function of every value: one added row with ``abc`` in ``age`` would turn the column to text). The
delimiter, the column names and their duplicates are decided from the **header line only**, which
is public like the column names themselves.

:func:`is_missing` and :func:`parse_classes` are pure functions of a single value, applied to every
row alike; they are what the DP type step (:mod:`dpsynth.tabular.dp_domain`) counts and what the
encoder (:mod:`dpsynth.tabular.encoding`) uses.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.errors import DpsynthError

#: Text values read as "missing" (after stripping blanks, case-insensitive). A public rule.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
#: Delimiters tried on the header line when ``sep`` is not given.
CANDIDATE_SEPARATORS = (",", ";", "\t", "|")
#: The header line is read as bytes up to its line break, at most this many (public: names only).
MAX_HEADER_BYTES = 1 << 20

#: The parse classes of one value, in the order they are tried (first match wins).
PARSE_CLASSES = ("missing", "boolean", "integer", "number", "date", "datetime", "text")
MISSING, BOOLEAN, INTEGER, NUMBER, DATE, DATETIME, TEXT = range(7)

_BOOL_TOKENS = frozenset({"true", "false", "yes", "no"})  # not t/f/y/n: F/M would read as booleans
_INT_RE = re.compile(r"^[+-]?\d+$")
_DAY = r"(\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}/\d{1,2}/\d{4})"
_DATE_RE = re.compile(r"^" + _DAY + r"$")
_DATETIME_RE = re.compile(r"^" + _DAY + r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


class CsvFormatError(DpsynthError, ValueError):
    """The CSV cannot be read as a table (delimiter, header, duplicate names). Public: header only."""


# --------------------------------------------------------------------------------- header / read
def read_header(path: str | Path, sep: str | None = None) -> tuple[list[str], str]:
    """``(column names, delimiter)`` from the first line of ``path`` (public: the header only).

    Without ``sep`` the delimiter is the one candidate (``, ; tab |``) that occurs in the header; a
    header with several candidates, or with none while it holds more than one name, is refused with
    a hint to pass ``--sep``. Duplicate names are refused (pandas would silently rename them
    ``a, a.1``).
    """
    path = Path(path)
    with path.open("rb") as fh:  # bytes up to the first line break only: no data row is read or decoded
        raw = fh.readline(MAX_HEADER_BYTES)
    cut = [i for i in (raw.find(b"\n"), raw.find(b"\r")) if i >= 0]
    if not cut and len(raw) >= MAX_HEADER_BYTES:
        raise CsvFormatError(f"the header line of {path} is longer than {MAX_HEADER_BYTES:,} bytes")
    try:
        line = raw[: min(cut)].decode("utf-8-sig") if cut else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFormatError(f"cannot read the header line of {path} as UTF-8 text: {exc.reason}") from None
    if not line.strip():
        raise CsvFormatError(f"{path} has no header line")
    if sep is None:
        found = [s for s in CANDIDATE_SEPARATORS if s in line]
        if len(found) > 1:
            shown = ", ".join(repr(s) for s in found)
            raise CsvFormatError(
                f"the header of {path} contains several possible delimiters ({shown}); pass --sep to say which one"
            )
        sep = found[0] if found else ","
    names = next(csv.reader([line], delimiter=sep))
    names = [n.strip() for n in names]
    if len(names) == 1 and any(s in line for s in (";", "\t")):
        raise CsvFormatError(
            f"{path} reads as a single column but its header contains ';' or a tab: pass --sep"
        )
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise CsvFormatError(f"duplicate column name(s) in the header of {path}: {', '.join(map(repr, dup))}")
    if any(n == "" for n in names):
        raise CsvFormatError(f"the header of {path} has an empty column name")
    return names, sep


def read_csv_text(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """The table in ``path`` with every cell as text (``dtype=str``, no NA inference).

    Raises :class:`CsvFormatError` for header problems (see :func:`read_header`); pandas' own
    parser errors propagate.
    """
    names, sep = read_header(path, sep)
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, sep=sep, encoding="utf-8-sig")
    df.columns = [str(c).strip() for c in df.columns]
    if list(df.columns) != names:  # e.g. pandas renamed a duplicate; cannot happen after read_header
        raise CsvFormatError(f"{path}: the parsed columns do not match the header")
    return df


# ---------------------------------------------------------------------------------- value rules
def _text(series: pd.Series) -> pd.Series:
    """Each value as stripped text; real missing values (None/NaN) become ''."""
    out = series.astype(object).where(~series.isna(), "")
    return out.map(lambda v: v if isinstance(v, str) else str(v)).str.strip()


def is_missing(series: pd.Series) -> np.ndarray:
    """Boolean mask: None/NaN/NaT, or text in :data:`MISSING_TOKENS`. Pure, per value."""
    base = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        lowered = _text(series).str.lower()
        return base | lowered.isin(MISSING_TOKENS).to_numpy()
    return base


def parse_classes(series: pd.Series) -> np.ndarray:
    """The parse class (index into :data:`PARSE_CLASSES`) of every value; first match wins.

    missing (see :func:`is_missing`) -> boolean (true/false/yes/no) -> integer
    (``[+-]digits``) -> number (finite float text) -> date (ISO ``YYYY-MM-DD`` or ``D/M/YYYY``-style)
    -> datetime (a date with ``hh:mm[:ss]``) -> text. Typed (non-text) values are classified by their text form.
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        out = np.full(len(series), BOOLEAN, dtype=np.int64)
        out[series.isna().to_numpy()] = MISSING
        return out
    text = _text(series)
    lowered = text.str.lower()
    out = np.full(len(series), TEXT, dtype=np.int64)
    missing = is_missing(series)
    boolean = lowered.isin(_BOOL_TOKENS).to_numpy()
    integer = text.str.match(_INT_RE).to_numpy(dtype=bool)
    numeric = pd.to_numeric(text.where(~lowered.isin({"inf", "-inf", "+inf", "infinity", "-infinity"}), ""),
                            errors="coerce").to_numpy(dtype=np.float64)
    number = np.isfinite(numeric)
    date = text.str.match(_DATE_RE).to_numpy(dtype=bool)
    stamp = text.str.match(_DATETIME_RE).to_numpy(dtype=bool)
    for mask, cls in ((stamp, DATETIME), (date, DATE), (number, NUMBER), (integer, INTEGER), (boolean, BOOLEAN), (missing, MISSING)):
        out[mask] = cls  # reverse priority order: the earliest class in PARSE_CLASSES wins
    return out
