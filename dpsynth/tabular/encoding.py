"""Reversible maps between table columns and the finite public domain the methods work on.

Every encoder is built from a *complete* public :class:`ColumnSpec` (bounds / categories known,
either from metadata or released with DP) and never looks at data to build itself.

* categorical: codes ``0..k-1`` for the public categories, then an ``other`` code when the column
  has an ``other_label`` (every value outside the list maps to it and decodes to that public
  label), then a ``missing`` code when nullable. Without ``other_label`` a value outside the list
  is treated as missing (nullable) or refused (not nullable) -- it is never revealed.
* boolean: ``False``, ``True``, then ``missing``.
* numerical / datetime: values are clipped to the public ``[lower, upper]`` (never revealed),
  cut into ``bins`` equal-width bins (one bin per integer when an integer column has fewer
  integers than bins), plus ``missing``. Decoding draws a value uniformly inside the bin (rounded
  for integer columns, clipped to the bounds); datetimes are handled as seconds since the epoch.
* id: not encoded (no private information is used); decoding makes fresh ids ``1..n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.tabular.schema import ColumnSpec, TableSchema, category_key

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


@dataclass(frozen=True)
class ColumnEncoder:
    """Encode one column to codes ``0..size-1`` and back (see the module docstring)."""

    spec: ColumnSpec
    edges: tuple[float, ...] = ()  # numerical / datetime bin edges (public)

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_spec(cls, spec: ColumnSpec) -> "ColumnEncoder":
        if spec.type in ("numerical", "datetime"):
            if not spec.has_bounds:
                raise ValueError(f"column {spec.name!r} has no public bounds to encode with")
            return cls(spec, numeric_edges(spec))
        if spec.type == "categorical" and spec.categories is None:
            raise ValueError(f"column {spec.name!r} has no public categories to encode with")
        return cls(spec)

    # ---------------------------------------------------------------------------------- layout
    @property
    def n_values(self) -> int:
        s = self.spec
        if s.type == "categorical":
            return len(s.categories) + (1 if s.other_label is not None else 0)  # type: ignore[arg-type]
        if s.type == "boolean":
            return 2
        return len(self.edges) - 1

    @property
    def missing_code(self) -> int | None:
        return self.n_values if self.spec.nullable else None

    @property
    def size(self) -> int:
        return self.n_values + (1 if self.spec.nullable else 0)

    # ---------------------------------------------------------------------------------- encode
    def encode(self, series: pd.Series) -> np.ndarray:
        """Codes for ``series`` (reads private data; output stays inside the library)."""
        s = self.spec
        missing = series.isna().to_numpy()
        codes = np.zeros(len(series), dtype=np.int64)
        if s.type == "categorical":
            lookup = {category_key(c): i for i, c in enumerate(s.categories)}  # type: ignore[arg-type]
            fallback = self.n_values - 1 if s.other_label is not None else -1
            keys = series.map(lambda v: lookup.get(category_key(v), fallback) if not _isna(v) else -2)
            codes = keys.to_numpy(dtype=np.int64)
            outside = codes == -1
            if outside.any():
                if not s.nullable:
                    raise ValueError(
                        f"column {s.name!r}: {int(outside.sum())} value(s) are outside its public category "
                        "list and the column is not nullable; add an 'other_label' or list the categories"
                    )
                missing = missing | outside
            codes = np.where(codes < 0, 0, codes)
        elif s.type == "boolean":
            parsed = series.map(_parse_bool)
            bad = parsed.isna().to_numpy() & ~missing
            if bad.any():
                raise ValueError(f"column {s.name!r}: {int(bad.sum())} value(s) are not booleans")
            codes = np.array([1 if v is True else 0 for v in parsed], dtype=np.int64)
        elif s.type in ("numerical", "datetime"):
            values = _to_seconds(series) if s.type == "datetime" else pd.to_numeric(series, errors="coerce")
            values = np.asarray(values, dtype=np.float64)
            bad = np.isnan(values) & ~missing
            if bad.any():
                raise ValueError(f"column {s.name!r}: {int(bad.sum())} value(s) are not {s.type}")
            missing = missing | np.isnan(values)
            clipped = np.clip(np.nan_to_num(values, nan=s.lower), s.lower, s.upper)
            codes = np.searchsorted(np.asarray(self.edges[1:-1]), clipped, side="right").astype(np.int64)
        else:
            raise ValueError(f"column {s.name!r} of type {s.type!r} is not encoded")
        if missing.any():
            if self.missing_code is None:
                raise ValueError(
                    f"column {s.name!r} has {int(missing.sum())} missing value(s) but is declared not nullable"
                )
            codes = np.where(missing, self.missing_code, codes)
        return codes

    # ---------------------------------------------------------------------------------- decode
    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Values for ``codes`` (post-processing: uses only public domain information)."""
        s = self.spec
        codes = np.asarray(codes, dtype=np.int64)
        missing = codes == self.missing_code if self.missing_code is not None else np.zeros(len(codes), bool)
        if s.type == "categorical":
            labels = list(s.categories) + ([s.other_label] if s.other_label is not None else [])  # type: ignore[arg-type]
            values = np.empty(len(codes), dtype=object)
            lab = np.asarray(labels, dtype=object)
            values[~missing] = lab[codes[~missing]]
            values[missing] = None
            return pd.Series(values, name=s.name, dtype=object)
        if s.type == "boolean":
            out = pd.Series(codes == 1, name=s.name, dtype="boolean")
            out[missing] = pd.NA
            return out
        edges = np.asarray(self.edges)
        safe = np.where(missing, 0, codes)
        lo, hi = edges[safe], edges[safe + 1]
        values = lo + rng.random(len(codes)) * (hi - lo)
        if s.integer or s.type == "datetime":
            values = np.floor(values)
            if s.integer:
                values = np.clip(values, math.ceil(s.lower), math.floor(s.upper))  # type: ignore[arg-type]
        values = np.clip(values, s.lower, s.upper)
        values = np.where(missing, np.nan, values)
        if s.type == "datetime":
            out = pd.to_datetime(pd.Series(values, name=s.name), unit="s")
            return out.dt.strftime(s.datetime_format) if s.datetime_format else out
        if s.integer:
            out = pd.Series(values, name=s.name).round()
            return out.astype("Int64") if s.nullable else out.astype(np.int64)
        return pd.Series(values, name=s.name, dtype=np.float64)


def numeric_edges(spec: ColumnSpec) -> tuple[float, ...]:
    """Public bin edges for a numerical / datetime column (equal width inside the bounds)."""
    lo, hi = float(spec.lower), float(spec.upper)  # type: ignore[arg-type]
    if spec.integer:
        first, last = math.ceil(lo), math.floor(hi)
        count = last - first + 1
        if 1 <= count <= spec.bins:  # one bin per integer value: [k, k+1)
            edges = [float(first + i) for i in range(count)] + [float(last) + 1.0 - 1e-9]
            edges[-1] = max(edges[-1], hi)
            return tuple(edges)
    return tuple(float(x) for x in np.linspace(lo, hi, spec.bins + 1))


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _parse_bool(v: Any) -> Any:
    if _isna(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    text = str(v).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _to_seconds(series: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(series, errors="coerce")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    out = ts.astype("int64").to_numpy(dtype=np.float64) / 1e9
    out[ts.isna().to_numpy()] = np.nan
    return out


@dataclass(frozen=True)
class TableEncoder:
    """All column encoders of a table; ``id`` columns are left out of the codes."""

    schema: TableSchema
    encoders: tuple[ColumnEncoder, ...]

    @classmethod
    def from_schema(cls, schema: TableSchema) -> "TableEncoder":
        return cls(schema, tuple(ColumnEncoder.from_spec(c) for c in schema.columns if c.type != "id"))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(e.spec.name for e in self.encoders)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(e.size for e in self.encoders)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        if not self.encoders:
            return np.zeros((len(df), 0), dtype=np.int64)
        return np.stack([e.encode(df[e.spec.name]) for e in self.encoders], axis=1)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        n = codes.shape[0]
        cols: dict[str, pd.Series] = {}
        for j, e in enumerate(self.encoders):
            cols[e.spec.name] = e.decode(codes[:, j], rng).reset_index(drop=True)
        for spec in self.schema.columns:
            if spec.type == "id":
                cols[spec.name] = pd.Series(np.arange(1, n + 1), name=spec.name)
        return pd.DataFrame({name: cols[name] for name in self.schema.names})
