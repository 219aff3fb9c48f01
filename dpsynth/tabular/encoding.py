"""Reversible maps between table columns and the finite public domain the methods work on.

Every encoder is built from a *complete* public :class:`ColumnSpec` (bounds / categories known,
either from metadata or released with DP) and never looks at data to build itself.

Every column has a last **missing** code. Encoding is a *total* function applied to each value
alike: it never refuses a value (a refusal before the charge would reveal whether one row holds a
bad value). A value the column cannot hold -- missing (:func:`dpsynth.tabular.parsing.is_missing`),
unparseable for its type, or outside the category list of a column without ``other_label`` -- gets
the missing code. On decoding, a nullable column turns that code into a missing value; a
non-nullable column (the default) replaces it with a draw from the same column's other synthetic
values (post-processing), so it never outputs a missing value. The share of that code in the
synthetic data is a DP quantity and drives the "matches none of the values" warning.

* categorical: codes ``0..k-1`` for the public categories (matched by their stripped text form),
  then an ``other`` code when the column has an ``other_label`` (every value outside the list maps
  to it and decodes to that public label). A category not in the public list is never revealed.
* boolean: ``False``, ``True``.
* numerical / datetime: values are clipped to the public ``[lower, upper]`` (never revealed),
  cut into ``bins`` equal-width bins (one bin per integer when an integer column has fewer
  integers than bins). A numerical column whose public bounds contain 0 gets a **point code for
  exactly 0** (public special value), so a zero-inflated column stays zero-inflated; an integer
  column also gets point codes for its two bounds (values clipped there keep their pile-up). Decoding draws a
  value uniformly inside the bin (a uniform integer of the bin for integer columns, so it re-encodes
  to the same code; clipped to the bounds); datetimes
  are handled as seconds since the epoch.
* id: not encoded (no private information is used); decoding makes fresh ids ``1..n``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.tabular.parsing import is_missing
from dpsynth.tabular.schema import ColumnSpec, TableSchema, category_key

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


@dataclass(frozen=True)
class ColumnEncoder:
    """Encode one column to codes ``0..size-1`` and back (see the module docstring)."""

    spec: ColumnSpec
    edges: tuple[float, ...] = ()  # numerical / datetime bin edges (public)
    points: tuple[float, ...] = ()  # public special values with their own code (numerical: 0)

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_spec(cls, spec: ColumnSpec) -> "ColumnEncoder":
        if spec.type in ("numerical", "datetime"):
            if not spec.has_bounds:
                raise ValueError(f"column {spec.name!r} has no public bounds to encode with")
            edges = numeric_edges(spec)
            return cls(spec, edges, point_values(spec, edges))
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
        return len(self.edges) - 1 + len(self.points)

    @property
    def missing_code(self) -> int:
        """The code of missing / unfit values (always present; see the module docstring)."""
        return self.n_values

    @property
    def size(self) -> int:
        return self.n_values + 1

    # ---------------------------------------------------------------------------------- encode
    def encode(self, series: pd.Series) -> np.ndarray:
        """Codes for ``series`` (reads private data; output stays inside the library).

        Total and per-value: never raises because of a value (see the module docstring).
        """
        s = self.spec
        series = series.reset_index(drop=True)
        missing = is_missing(series)
        if s.type == "categorical":
            lookup = {category_key(c): i for i, c in enumerate(s.categories)}  # type: ignore[arg-type]
            fallback = self.n_values - 1 if s.other_label is not None else -1
            keys = series.map(lambda v: lookup.get(category_key(v), fallback))
            codes = keys.to_numpy(dtype=np.int64)
            missing = missing | (codes < 0)
        elif s.type == "boolean":
            parsed = series.map(_parse_bool)
            missing = missing | parsed.isna().to_numpy()
            codes = np.array([1 if v is True else 0 for v in parsed], dtype=np.int64)
        elif s.type in ("numerical", "datetime"):
            values = _to_seconds(series) if s.type == "datetime" else _to_float(series)
            values = np.asarray(values, dtype=np.float64)
            missing = missing | ~np.isfinite(values)
            clipped = np.clip(np.nan_to_num(values, nan=s.lower, posinf=s.upper, neginf=s.lower), s.lower, s.upper)
            codes = np.searchsorted(np.asarray(self.edges[1:-1]), clipped, side="right").astype(np.int64)
            n_bins = len(self.edges) - 1
            bounds = (s.lower, s.upper) if s.integer else ()
            for j, point in enumerate(self.points):  # a bound's code also takes the values clipped onto it
                codes = np.where((clipped if point in bounds else values) == point, n_bins + j, codes)
        else:
            raise ValueError(f"column {s.name!r} of type {s.type!r} is not encoded")
        return np.where(missing, self.missing_code, codes).astype(np.int64)

    # ---------------------------------------------------------------------------------- decode
    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Values for ``codes`` (post-processing: uses only public domain information)."""
        s = self.spec
        codes = np.asarray(codes, dtype=np.int64)
        if not s.nullable:
            codes = impute_missing_codes(codes, self.missing_code, self.n_values, rng)
        missing = codes == self.missing_code
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
        n_bins = len(edges) - 1
        is_point = (codes >= n_bins) & ~missing
        safe = np.where(missing | is_point, 0, codes)
        lo, hi = edges[safe], edges[safe + 1]
        if s.integer:  # a uniform integer of the bin [lo, hi): flooring a real draw would leak into the bin below
            first = np.ceil(lo)
            count = np.maximum(np.ceil(hi) - first, 1.0)
            values = first + np.floor(rng.random(len(codes)) * count)
        else:
            values = lo + rng.random(len(codes)) * (hi - lo)
        if self.points:
            pts = np.asarray(self.points, dtype=np.float64)
            values = np.where(is_point, pts[np.clip(codes - n_bins, 0, len(pts) - 1)], values)
        if s.integer or s.type == "datetime":
            values = np.floor(values)
            if s.integer:
                values = np.clip(values, math.ceil(s.lower), math.floor(s.upper))  # type: ignore[arg-type]
                for point in self.points:  # a bin's draw never lands on a point code's value
                    hit = (values == point) & ~is_point
                    values = np.where(hit, np.where(point + 1 < hi, point + 1, point - 1), values)
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


def point_values(spec: ColumnSpec, edges: tuple[float, ...]) -> tuple[float, ...]:
    """Public special values with their own code (numerical columns only): 0 when the bounds hold
    it, and for integer columns the two bounds themselves (values clipped to a bound land there, so
    a pile-up at a bound stays a pile-up). None when the column has one code per integer already."""
    if spec.type != "numerical":
        return ()
    lo, hi = float(spec.lower), float(spec.upper)  # type: ignore[arg-type]
    if spec.integer and len(edges) - 1 == math.floor(hi) - math.ceil(lo) + 1:
        return ()  # one bin per integer value: every value already has its own code
    points = [0.0] if lo <= 0.0 <= hi else []
    if spec.integer:
        points += [p for p in (lo, hi) if float(p).is_integer() and p not in points]
    return tuple(sorted(points))


def impute_missing_codes(codes: np.ndarray, missing_code: int, n_values: int, rng: np.random.Generator) -> np.ndarray:
    """Replace ``missing_code`` by draws from the column's other synthetic codes (post-processing);
    uniform over ``0..n_values-1`` when every code is missing."""
    codes = np.asarray(codes, dtype=np.int64).copy()
    missing = codes == missing_code
    if not missing.any():
        return codes
    pool = codes[~missing]
    if pool.size:
        codes[missing] = rng.choice(pool, size=int(missing.sum()))
    else:
        codes[missing] = rng.integers(0, max(n_values, 1), size=int(missing.sum()))
    return codes


def _to_float(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)


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
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = series.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # format inference notices; parsing stays per value
            ts = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
    else:
        ts = series
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
