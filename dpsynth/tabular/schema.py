"""Public table metadata: column types, category sets, bounds and the row count.

Metadata is **public** by definition: it is given by the user (a JSON/YAML file, a dict, or an SDV
``Metadata``) and is never derived from the private table. What it does not say is either derived
with DP (see :mod:`dpsynth.tabular.dp_domain`, charged to the ledger) or refused.

Format (JSON or YAML)::

    {
      "row_count": 48842,                       # optional, public row count
      "columns": {
        "age":    {"type": "numerical", "lower": 17, "upper": 90, "bins": 15, "integer": true},
        "sex":    {"type": "categorical", "categories": ["Female", "Male"]},
        "member": {"type": "boolean"},
        "joined": {"type": "datetime", "lower": "2000-01-01", "upper": "2024-12-31",
                   "format": "%Y-%m-%d"},
        "ssn":    {"type": "id"},
        "notes":  {"type": "categorical", "nullable": false, "other_label": "other"}
      }
    }

Keys: ``type`` (alias ``sdtype``) in numerical / categorical / boolean / datetime / id / auto
(``auto``: decided by the charged DP type step); ``lower``/``upper`` (aliases ``min``/``max``);
``bins`` (numeric resolution, default 16); ``integer``; ``categories``; ``nullable`` (default
**false**: the declared type's non-null form -- missing or unparseable values are then replaced in
the output by draws from the column's other synthetic values; ``true`` keeps them as missing);
``other_label`` (a public label that stands for every value outside the category list);
``format`` (datetime output format). SDV's single-table metadata JSON (``{"tables": {...}}``)
and ``sdv.metadata.Metadata`` objects are accepted; their sdtypes carry no bounds or categories,
so those are derived with DP.

**Column names are public; types never come from the values.** The CLI reads a CSV as text, so a
column without metadata has type ``auto`` and its type (and nullability, and integer flag) is
released by the charged DP type step (:func:`dpsynth.tabular.dp_domain.dp_type_counts`). For a
DataFrame passed to the library, a non-text dtype (number, bool, datetime) of an undeclared column
is taken as its type: **the caller vouches that those dtypes are public** (a dtype pandas inferred
from a private CSV is not: one added row can change it). Text/object columns are ``auto``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from dpsynth.errors import DpsynthError

COLUMN_TYPES = ("numerical", "categorical", "boolean", "datetime", "id", "auto")
DEFAULT_BINS = 16
#: sdtypes that are personal identifiers in SDV: they cannot be synthesised privately.
_PII_SDTYPES = {
    "email", "name", "first_name", "last_name", "phone_number", "ssn", "address", "street_address",
    "ipv4_address", "ipv6_address", "credit_card_number", "iban", "license_plate", "url", "uuid",
}


class MetadataError(DpsynthError, ValueError):
    """The metadata is malformed or does not match the table."""


class UnknownColumnError(MetadataError):
    """The metadata names a column the table does not have."""


class IdentifierColumnError(DpsynthError, ValueError):
    """Kept for compatibility; no longer raised before the charge (a one-row-dependent refusal).

    An undeclared identifier-like column now goes through the DP type and category steps, collapses
    to the ``other`` label, and is reported as degenerate (from DP outputs) with the hint
    ``type: id``.
    """


@dataclass(frozen=True)
class ColumnSpec:
    """One column's public description. ``None`` means "not given": derived with DP or refused."""

    name: str
    type: str
    categories: tuple[Any, ...] | None = None
    lower: float | None = None  # datetimes: seconds since the epoch
    upper: float | None = None
    bins: int = DEFAULT_BINS
    integer: bool = False
    nullable: bool = False
    other_label: Any = None
    datetime_format: str | None = None
    declared: bool = True  # False when the type came from a dtype or the DP type step, not metadata

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise MetadataError(f"column {self.name!r}: unknown type {self.type!r}; use one of {COLUMN_TYPES}")
        if not isinstance(self.bins, int) or isinstance(self.bins, bool) or self.bins < 1:
            raise MetadataError(f"column {self.name!r}: bins must be a positive integer, got {self.bins!r}")
        for bound in (self.lower, self.upper):
            if bound is not None and not math.isfinite(bound):
                raise MetadataError(f"column {self.name!r}: bounds must be finite numbers")
        if (self.lower is None) != (self.upper is None):
            raise MetadataError(f"column {self.name!r}: give both lower and upper, or neither")
        if self.lower is not None and not self.lower < self.upper:  # type: ignore[operator]
            raise MetadataError(f"column {self.name!r}: lower must be < upper")
        if self.categories is not None and len(self.categories) == 0:
            raise MetadataError(f"column {self.name!r}: categories must not be empty")
        if self.categories is not None and len({_key(c) for c in self.categories}) != len(self.categories):
            raise MetadataError(f"column {self.name!r}: categories contain duplicates")

    @property
    def has_bounds(self) -> bool:
        return self.lower is not None

    @property
    def needs_dp_type(self) -> bool:
        return self.type == "auto"

    @property
    def needs_dp_bounds(self) -> bool:
        return self.type in ("numerical", "datetime") and not self.has_bounds

    @property
    def needs_dp_categories(self) -> bool:
        return self.type == "categorical" and self.categories is None


@dataclass(frozen=True)
class TableSchema:
    """Public metadata for a whole table, in the table's column order."""

    columns: tuple[ColumnSpec, ...]
    row_count: int | None = None
    source: str = "metadata"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def with_column(self, spec: ColumnSpec) -> "TableSchema":
        return replace(self, columns=tuple(spec if c.name == spec.name else c for c in self.columns))

    def to_dict(self) -> dict[str, Any]:
        """The public metadata as a JSON-ready dict (the same format :func:`load_metadata` reads)."""
        cols: dict[str, Any] = {}
        for c in self.columns:
            d: dict[str, Any] = {"type": c.type, "nullable": c.nullable}
            if c.categories is not None:
                d["categories"] = [_json_scalar(v) for v in c.categories]
            if c.lower is not None:
                if c.type == "datetime":
                    d["lower"] = pd.Timestamp(c.lower, unit="s").isoformat()
                    d["upper"] = pd.Timestamp(c.upper, unit="s").isoformat()
                else:
                    d["lower"], d["upper"] = c.lower, c.upper
            if c.type in ("numerical", "datetime"):
                d["bins"] = c.bins
            if c.integer:
                d["integer"] = True
            if c.other_label is not None:
                d["other_label"] = _json_scalar(c.other_label)
            if c.datetime_format:
                d["format"] = c.datetime_format
            cols[c.name] = d
        out: dict[str, Any] = {"columns": cols}
        if self.row_count is not None:
            out["row_count"] = int(self.row_count)
        return out


def _json_scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _key(value: Any) -> str:
    """How a value is matched against a public category: by its stripped text form (CSV-safe)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def category_key(value: Any) -> str:
    """Public helper: the matching key of a category value (see :func:`_key`)."""
    return _key(value)


# ---------------------------------------------------------------------------------------- loading
def load_metadata(source: Any) -> dict[str, Any]:
    """Read metadata from a path (.json/.yaml/.yml), a dict, or an SDV ``Metadata`` object.

    Returns the normalised raw form ``{"columns": {name: {...}}, "row_count": int | None}``.
    """
    if source is None:
        return {"columns": {}, "row_count": None}
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise MetadataError(f"metadata file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - report any parse failure clearly
            raise MetadataError(f"cannot parse metadata file {path}: {exc}") from exc
        return _normalise(raw)
    if hasattr(source, "to_dict") and type(source).__module__.startswith("sdv"):
        return _normalise(source.to_dict())
    if isinstance(source, Mapping):
        return _normalise(source)
    raise MetadataError(f"unsupported metadata of type {type(source).__name__}")


def _normalise(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise MetadataError("metadata must be a mapping with a 'columns' entry")
    if "tables" in raw:  # SDV multi/single table metadata
        tables = raw["tables"]
        if not isinstance(tables, Mapping) or len(tables) != 1:
            raise MetadataError("SDV metadata must describe exactly one table")
        table = next(iter(tables.values()))
        return {"columns": dict(table.get("columns", {})), "row_count": raw.get("row_count")}
    columns = raw.get("columns")
    if columns is None:
        raise MetadataError("metadata has no 'columns' entry")
    if isinstance(columns, list):  # [{"name": ..., ...}, ...]
        try:
            columns = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in columns}
        except (KeyError, TypeError) as exc:
            raise MetadataError("a column list needs a 'name' in every entry") from exc
    if not isinstance(columns, Mapping):
        raise MetadataError("'columns' must be a mapping from column name to its description")
    row_count = raw.get("row_count")
    if row_count is not None:
        if isinstance(row_count, bool) or not isinstance(row_count, int) or row_count < 1:
            raise MetadataError(f"row_count must be a positive integer, got {row_count!r}")
    return {"columns": dict(columns), "row_count": row_count}


def _parse_bound(name: str, ctype: str, value: Any) -> float | None:
    if value is None:
        return None
    if ctype == "datetime":
        try:
            return float(pd.Timestamp(value).value) / 1e9
        except Exception as exc:  # noqa: BLE001
            raise MetadataError(f"column {name!r}: cannot parse datetime bound {value!r}") from exc
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetadataError(f"column {name!r}: bounds must be numbers, got {value!r}")
    return float(value)


def spec_from_raw(name: str, raw: Mapping[str, Any]) -> ColumnSpec:
    """One :class:`ColumnSpec` from its raw metadata entry."""
    if not isinstance(raw, Mapping):
        raise MetadataError(f"column {name!r}: description must be a mapping")
    ctype = raw.get("type", raw.get("sdtype"))
    if ctype is None:
        raise MetadataError(f"column {name!r}: missing 'type'")
    ctype = str(ctype).lower()
    if ctype in ("numeric", "number", "float", "integer", "int"):
        ctype = "numerical"
    if ctype in ("category", "string", "text"):
        ctype = "categorical"
    if ctype in ("bool",):
        ctype = "boolean"
    if ctype in ("date",):
        ctype = "datetime"
    if ctype in _PII_SDTYPES:
        ctype = "id"
    lower = _parse_bound(name, ctype, raw.get("lower", raw.get("min")))
    upper = _parse_bound(name, ctype, raw.get("upper", raw.get("max")))
    cats = raw.get("categories", raw.get("values"))
    integer = raw.get("integer")
    if integer is None:
        integer = raw.get("computer_representation", "").lower().startswith(("int", "uint")) if isinstance(
            raw.get("computer_representation"), str
        ) else False
    return ColumnSpec(
        name=name,
        type=ctype,
        categories=tuple(cats) if cats is not None else None,
        lower=lower,
        upper=upper,
        bins=int(raw.get("bins", DEFAULT_BINS)),
        integer=bool(integer),
        nullable=bool(raw.get("nullable", False)),
        other_label=raw.get("other_label"),
        datetime_format=raw.get("format", raw.get("datetime_format")),
    )


# ------------------------------------------------------------------------------------ resolution
def infer_type(series: pd.Series) -> str:
    """The column type a **caller-vouched** dtype implies; text/object dtypes give ``auto``.

    Only for DataFrames passed to the library (see the module docstring). The CLI reads CSVs as
    text, so every undeclared CSV column is ``auto``.
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numerical"
    return "auto"


def resolve_schema(df: pd.DataFrame, metadata: Any = None) -> TableSchema:
    """A :class:`TableSchema` for every column of ``df`` from public inputs only.

    Reads the column names and dtypes of ``df`` (public by the contract above), never its values.

    Raises:
        UnknownColumnError: the metadata names a column ``df`` lacks.
    """
    raw = load_metadata(metadata)
    declared = raw["columns"]
    unknown = [c for c in declared if c not in df.columns]
    if unknown:
        raise UnknownColumnError(
            f"metadata describes column(s) not in the table: {', '.join(map(str, unknown))}; "
            f"table columns are: {', '.join(map(str, df.columns))}"
        )
    specs = []
    notes = []
    for name in df.columns:
        if name in declared:
            specs.append(spec_from_raw(str(name), declared[name]))
            continue
        ctype = infer_type(df[name])
        if ctype == "auto":
            specs.append(ColumnSpec(name=str(name), type="auto", declared=False))
            notes.append(f"column {name!r}: no metadata; type released by the DP type step")
        else:
            specs.append(ColumnSpec(name=str(name), type=ctype, integer=pd.api.types.is_integer_dtype(df[name].dtype),
                                    nullable=True, declared=False))
            notes.append(f"column {name!r}: type {ctype!r} from the caller's dtype (the caller vouches it is public)")
    return TableSchema(columns=tuple(specs), row_count=raw["row_count"], notes=tuple(notes))


def metadata_line(spec: ColumnSpec) -> str:
    """A one-line YAML metadata entry for ``spec`` (used in hints)."""
    d = TableSchema((spec,)).to_dict()["columns"][spec.name]
    inner = ", ".join(f"{k}: {json.dumps(v)}" for k, v in d.items())
    return f"{spec.name}: {{{inner}}}"
