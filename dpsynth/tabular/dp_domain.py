"""DP mechanisms that release the parts of the domain the public metadata does not give.

Privacy unit: one row; add-or-remove-one neighbours. Each function is a pure mechanism; its event
is stated next to it. The domain stage is a calibrate/run pair like any method:
:func:`calibrate_domain` fixes every noise scale and the ledger stages from public inputs only
(the schema and the budget share); the caller charges the plan; :func:`run_domain` then reads the
data and releases the missing parts.

* :func:`dp_type_counts` -- the **type step**: for a column without a declared type, a Gaussian
  histogram over the public parse classes of :mod:`dpsynth.tabular.parsing` (missing, boolean,
  integer, number, datetime, text). Every row falls in exactly one class, so the histogram has L2
  sensitivity 1: one ``GaussianDpEvent(sigma)`` per column. :func:`decide_type` turns the noisy
  counts into the type, integer flag and nullability (post-processing).

* :func:`dp_row_count` -- Gaussian mechanism on the row count (sensitivity 1):
  ``GaussianDpEvent(sigma)``.
* :func:`dp_bounds` -- a Gaussian histogram over **public** geometric bins (factor sqrt(2),
  1e-3..1e12 in magnitude, both signs; year bins 1900-2100 for datetimes); the bounds are the
  edges of the outermost single bins, or windows of 2 or 4 bins outside those, whose noisy sum
  clears a threshold (post-processing; the windows keep mass spread thinly over many bins). One row is
  in one bin: L2 sensitivity 1, one ``GaussianDpEvent(sigma)`` per column. (An exponential-
  mechanism quantile over such a grid was tried first: with the many empty candidates below the
  data its picks were close to uniform at small epsilon.) Values outside the released bounds are
  clipped later, never revealed.
* :func:`dp_categories` -- thresholded Gaussian histogram (partition selection): each distinct
  value's count + N(0, sigma^2) is kept iff it exceeds ``threshold`` **and** the true count is at
  least ``min_count`` (2 by default: a value seen once never survives). A row touches one value,
  so the kept counts are a Gaussian mechanism of L2 sensitivity 1; a value whose count goes from
  ``min_count - 1`` to ``min_count`` appears with probability at most
  ``delta_threshold = P(min_count + N(0, sigma^2) > threshold)``. The guarantee is
  ``(epsilon_gauss(d1), d1 + delta_threshold)`` for every d1 (Gaussian partition selection;
  Desfontaines et al. 2022; Korolova et al. 2009).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from dp_accounting import dp_event
from scipy.stats import norm

from dpsynth.accounting.events import ApproxDpEvent
from dpsynth.errors import DpsynthError, DpsynthWarning
from dpsynth.tabular import _accounting as acc
from dpsynth.tabular.parsing import (
    BOOLEAN,
    DATE,
    DATETIME,
    INTEGER,
    MISSING,
    NUMBER,
    PARSE_CLASSES,
    TEXT,
    is_missing,
    parse_classes,
)
from dpsynth.tabular.schema import ColumnSpec, TableSchema

#: Shares of the domain budget between its parts (renormalised over the parts a call needs).
PART_WEIGHTS = {"types": 0.25, "row_count": 0.1, "values": 0.65}
#: Public label that stands for every value outside a DP-discovered category list.
OTHER_LABEL = "__other__"
#: Window widths (in public bins) of the bounds tests; see :func:`dp_bounds`.
BOUND_WINDOWS = (1, 2, 4)
#: One-sided error probability of the post-processing decisions (nullable, integer).
DECISION_ERROR = 0.01


class CategoryDiscoveryUnavailable(DpsynthError, ValueError):
    """DP category discovery needs an approximate-DP ledger event the accounting lacks."""


class UnreliableDPBoundsWarning(DpsynthWarning):
    """No public bin cleared the noise threshold: the released bounds are mostly noise."""


def dp_row_count(n: int, sigma: float, rng: np.random.Generator) -> int:
    """Noisy row count ``round(n + N(0, sigma^2))``, at least 2. Event: ``GaussianDpEvent(sigma)``."""
    return max(2, int(round(n + rng.normal(0.0, sigma))))


def numeric_candidates() -> np.ndarray:
    """The public bin edges for numeric bounds: 0 and +-2^(k/2), k = -20..80 (1e-3..1e12)."""
    mags = 2.0 ** (np.arange(-20, 81) / 2.0)
    return np.concatenate([-mags[::-1], [0.0], mags])


def datetime_candidates() -> np.ndarray:
    """The public bin edges for datetime bounds: year starts 1900-2100, in epoch seconds."""
    stamps = pd.date_range("1900-01-01", "2100-01-01", freq="YS")
    return stamps.asi8.astype(np.float64) / 1e9


def bounds_threshold(sigma: float, n_bins: int, false_bin_probability: float = 0.01) -> float:
    """Noisy-count threshold above which a bin counts as occupied (post-processing choice).

    An empty bin clears it with probability ``false_bin_probability / n_bins``, so a spurious far
    bound appears with probability at most ``false_bin_probability``.
    """
    return float(sigma * norm.isf(false_bin_probability / max(n_bins, 1)))


def dp_bounds(
    values: np.ndarray,
    sigma: float,
    rng: np.random.Generator,
    candidates: np.ndarray | None = None,
    column: str = "a column",
    warn: bool = True,
) -> tuple[float, float]:
    """DP (lower, upper) from a Gaussian histogram over public bins; ``GaussianDpEvent(sigma)``.

    The bins are the intervals between consecutive public ``candidates`` (plus one below and one
    above the grid); a row falls into one bin, so the histogram has L2 sensitivity 1. The bounds
    are the outer edges of the lowest and highest bins whose noisy count clears
    :func:`bounds_threshold` -- post-processing. If no bin clears it (too few rows for the
    noise), the bin with the largest noisy count is used and an :class:`UnreliableDPBoundsWarning`
    says so (the warning depends only on the noisy histogram: post-processing).
    """
    grid = numeric_candidates() if candidates is None else np.asarray(candidates, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    bins = np.searchsorted(grid, x, side="right")  # 0 .. len(grid)
    counts = np.bincount(bins, minlength=len(grid) + 1).astype(np.float64)
    noisy = counts + rng.normal(0.0, sigma, size=counts.shape)
    # Multi-scale window tests (post-processing of the noisy histogram): a window of w consecutive
    # bins is "occupied" when its noisy sum clears threshold * sqrt(w) (an empty window's sum is
    # N(0, w sigma^2)); the threshold is Bonferroni-corrected over every window of every width, so
    # a spurious bound appears with probability <= 1%. Width 1 finds concentrated mass; the wider
    # windows (over the bins outside it) find mass spread thinly over neighbouring bins.
    widths = [w for w in BOUND_WINDOWS if w <= counts.size]
    threshold = bounds_threshold(sigma, counts.size * len(widths))
    core = noisy > threshold  # width 1: bins holding concentrated mass
    hits1 = np.flatnonzero(core)
    low, high = (int(hits1[0]), int(hits1[-1])) if hits1.size else (counts.size, -1)
    rest = np.where(core, 0.0, noisy)  # wider windows look for mass *outside* the core bins
    csum = np.concatenate([[0.0], np.cumsum(rest)])
    for w in widths[1:]:
        sums = csum[w:] - csum[:-w]  # sums[i] = bins i..i+w-1
        hits = np.flatnonzero(sums > threshold * math.sqrt(w))
        if hits.size:
            low, high = min(low, int(hits[0])), max(high, int(hits[-1]) + w - 1)
    reliable = high >= 0
    if reliable:
        occupied = np.array([low, high])
    # Outer edges: bin b spans [grid[b-1], grid[b]); the open-ended bins map to the grid's ends.
    if not reliable:
        occupied = np.array([int(np.argmax(noisy))])
        if warn:
            warnings.warn(
                f"DP bounds for {column}: no public bin's noisy count cleared the threshold (too few rows "
                "for this share of the budget), so the released bounds are mostly noise and the column's "
                "synthetic values may be far off. Give public bounds for it in the metadata.",
                UnreliableDPBoundsWarning,
                stacklevel=2,
            )
    lo_bin, hi_bin = int(occupied[0]), int(occupied[-1])
    lo = float(grid[max(lo_bin - 1, 0)])
    hi = float(grid[min(hi_bin, len(grid) - 1)])
    if hi <= lo:
        above = grid[grid > lo]
        hi = float(above[0]) if above.size else lo + 1.0
    return lo, hi


def threshold_for(sigma: float, delta_threshold: float, min_count: int = 2) -> float:
    """The threshold at which a value with true count ``min_count`` survives w.p. ``delta_threshold``."""
    if not 0.0 < delta_threshold < 1.0:
        raise ValueError("delta_threshold must be in (0, 1)")
    return float(min_count + sigma * norm.isf(delta_threshold))


def dp_categories(
    values: pd.Series | Sequence,
    sigma: float,
    threshold: float,
    rng: np.random.Generator,
    min_count: int = 2,
) -> list:
    """The values whose noisy count clears ``threshold`` (and whose true count is >= ``min_count``).

    Returned sorted by their text form (the order carries no count information). Missing values
    are not categories (they have their own code).
    """
    s = pd.Series(values)
    s = s[~is_missing(s)]
    counts = s.astype(object).map(_canonical).value_counts()
    if counts.empty:
        return []
    noisy = counts.to_numpy(dtype=np.float64) + rng.normal(0.0, sigma, size=len(counts))
    keep = (noisy > threshold) & (counts.to_numpy() >= min_count)
    return sorted(counts.index[keep].tolist(), key=lambda v: (str(type(v)), str(v)))


def _canonical(value):
    """Numbers read as floats but holding integers become ints (so 3.0 and 3 are one category)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return value.strip()
    return value


# ------------------------------------------------------------------------------------- type step
def dp_type_counts(series: pd.Series, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy count of each parse class (:data:`~dpsynth.tabular.parsing.PARSE_CLASSES`) of ``series``.

    Each row falls in exactly one class (a per-value rule applied identically to every row), so
    adding or removing a row changes one count by one: L2 sensitivity 1, ``GaussianDpEvent(sigma)``.
    """
    counts = np.bincount(parse_classes(series), minlength=len(PARSE_CLASSES)).astype(np.float64)
    return counts + rng.normal(0.0, sigma, size=counts.shape)


@dataclass(frozen=True)
class TypeDecision:
    """The released type of a column (post-processing of its noisy class counts)."""

    type: str
    integer: bool
    nullable: bool
    reliable: bool
    datetime_format: str | None = None


def decide_type(noisy: Sequence[float], sigma: float) -> TypeDecision:
    """Public rule on the noisy class counts (post-processing, so it is DP).

    The type is the largest of the groups boolean / numeric (integer + number) / datetime / text
    (text -> categorical; date + datetime -> datetime, written as ``%Y-%m-%d`` when plain dates
    outnumber timestamps); a numerical column is ``integer`` unless its noisy count of non-integer
    numbers clears ``z * sigma`` (z = the 99% normal quantile); the column is nullable when its noisy
    missing count clears the same level. ``reliable`` is false when the largest group leads the
    second by less than ``3 * sqrt(3) * sigma`` (three standard deviations of the difference of
    two group sums; the decision is then mostly noise).
    """
    c = np.asarray(noisy, dtype=np.float64)
    z = float(norm.isf(DECISION_ERROR))
    groups = {
        "boolean": c[BOOLEAN],
        "numerical": c[INTEGER] + c[NUMBER],
        "datetime": c[DATE] + c[DATETIME],
        "categorical": c[TEXT],
    }
    ranked = sorted(groups, key=lambda k: groups[k], reverse=True)
    ctype = ranked[0]
    lead = float(groups[ranked[0]] - groups[ranked[1]])
    return TypeDecision(
        type=ctype,
        integer=bool(ctype == "numerical" and c[NUMBER] <= z * sigma),
        nullable=bool(c[MISSING] > z * sigma),
        reliable=bool(lead > 3.0 * math.sqrt(3.0) * sigma),
        datetime_format="%Y-%m-%d" if ctype == "datetime" and c[DATE] > c[DATETIME] else None,
    )


# --------------------------------------------------------------------------- calibrate / run pair
@dataclass(frozen=True)
class DomainPlan:
    """The calibrated domain stage: its ledger stages and public parameters (no data read)."""

    epsilon: float
    delta: float
    stages: tuple = ()
    parameters: dict = field(default_factory=dict)
    mechanism: str = (
        "dp-domain (gaussian histograms of parse classes for types, gaussian row count, gaussian "
        "histograms over public bins for bounds, thresholded histograms for categories)"
    )
    sampling: str = "none"
    event: Any = None  # the ledger composes ``stages``

    @property
    def needed(self) -> bool:
        return bool(self.stages)


def approx_dp_event(epsilon: float, delta: float) -> dp_event.DpEvent:
    """The black-box (epsilon, delta)-DP event of thresholded category discovery."""
    return ApproxDpEvent(epsilon=epsilon, delta=delta)


def calibrate_domain(schema: TableSchema, epsilon: float, delta: float) -> DomainPlan:
    """Calibrate the DP domain stage within ``(epsilon, delta)`` from public inputs only.

    Parts (each present only when needed; the budget is split by :data:`PART_WEIGHTS`):

    * ``types`` -- one Gaussian class histogram per ``auto`` column;
    * ``row_count`` -- a Gaussian count;
    * ``values`` -- one histogram per column that needs bounds or categories, *including* every
      ``auto`` column (whose type is only known after the type step: it then runs the bounds
      histogram or the thresholded category histogram -- both Gaussian with the same sigma, the
      category one adding ``threshold_delta`` -- so the stage covers either choice). With any
      category-capable column the stage is ``ApproxDpEvent(eps_v, delta_v)``: k Gaussians
      calibrated to ``(eps_v, delta_v / 2)`` plus ``delta_v / (2 k_c)`` per category-capable
      column for the threshold (Gaussian partition selection); otherwise the k Gaussians get all
      of ``delta_v``.
    """
    type_cols = [c.name for c in schema.columns if c.needs_dp_type]
    bound_cols = [c.name for c in schema.columns if c.needs_dp_bounds]
    cat_cols = [c.name for c in schema.columns if c.needs_dp_categories]
    value_cols = [c.name for c in schema.columns if c.name in set(type_cols) | set(bound_cols) | set(cat_cols)]
    parts = [p for p, need in (("types", type_cols), ("row_count", schema.row_count is None), ("values", value_cols)) if need]
    if not parts:
        return DomainPlan(0.0, 0.0)
    if delta <= 0:
        raise ValueError("deriving the domain with DP needs delta > 0")
    total_w = sum(PART_WEIGHTS[p] for p in parts)
    share = {p: PART_WEIGHTS[p] / total_w for p in parts}
    stages = []
    params: dict = {"epsilon": epsilon, "delta": delta, "shares": share}
    if "types" in parts:
        eps_p, delta_p = epsilon * share["types"], delta * share["types"]
        k = len(type_cols)
        sigma = float(acc.gaussian_noise_multiplier(eps_p, delta_p, count=k))
        stages.append(acc.Stage("types", dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), k), delta_p))
        params["types"] = {"columns": type_cols, "sigma": sigma, "classes": list(PARSE_CLASSES),
                           "rule": "largest of boolean/numeric/datetime/text; integer and nullable at the 99% noise level"}
    if "row_count" in parts:
        eps_p, delta_p = epsilon * share["row_count"], delta * share["row_count"]
        sigma = float(acc.gaussian_noise_multiplier(eps_p, delta_p))
        stages.append(acc.Stage("row_count", dp_event.GaussianDpEvent(sigma), delta_p))
        params["row_count"] = {"sigma": sigma}
    if "values" in parts:
        eps_p, delta_p = epsilon * share["values"], delta * share["values"]
        k = len(value_cols)
        cat_capable = [c for c in value_cols if c in set(cat_cols) | set(type_cols)]
        q: dict = {"columns": value_cols, "bounds_histogram": "public geometric bins (numbers), year starts (datetimes)"}
        if cat_capable:
            sigma = float(acc.gaussian_noise_multiplier(eps_p, delta_p / 2, count=k))
            threshold_delta = delta_p / (2 * len(cat_capable))
            stages.append(acc.Stage("values", approx_dp_event(eps_p, delta_p), delta_p))
            q.update(threshold=threshold_for(sigma, threshold_delta), min_count=2,
                     threshold_delta_per_column=threshold_delta, category_capable_columns=cat_capable)
        else:
            sigma = float(acc.gaussian_noise_multiplier(eps_p, delta_p, count=k))
            stages.append(acc.Stage("values", dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), k), delta_p))
        q["sigma"] = sigma
        params["values"] = q
    return DomainPlan(epsilon=epsilon, delta=delta, stages=tuple(stages), parameters=params)


@dataclass
class DomainRelease:
    """What :func:`run_domain` released (all DP): the completed schema, the DP row count and a
    per-column report of what the stage decided, kept and dropped."""

    schema: TableSchema
    dp_row_count: int | None
    report: dict[str, dict[str, Any]]

    @property
    def unreliable_bounds(self) -> list[str]:
        return [c for c, r in self.report.items() if r.get("bounds_unreliable")]

    @property
    def unreliable_types(self) -> list[str]:
        return [c for c, r in self.report.items() if r.get("type_unreliable")]

    @property
    def collapsed(self) -> list[str]:
        return [c for c, r in self.report.items() if r.get("collapsed")]


def run_domain(df: pd.DataFrame, schema: TableSchema, plan: DomainPlan, rng: np.random.Generator) -> DomainRelease:
    """Run the DP domain mechanisms of ``plan`` (already charged); returns the released domain.

    Reads the private table. Every value in the result is a post-processing of the noisy outputs.
    Emits one :class:`UnreliableDPBoundsWarning` listing every column whose bounds are mostly noise.
    """
    p = plan.parameters
    report: dict[str, dict[str, Any]] = {}
    noisy_n = None
    if "row_count" in p:
        noisy_n = dp_row_count(len(df), p["row_count"]["sigma"], rng)
    if "types" in p:
        sigma_t = p["types"]["sigma"]
        for name in p["types"]["columns"]:
            decision = decide_type(dp_type_counts(df[name], sigma_t, rng), sigma_t)
            spec = replace(schema[name], type=decision.type, integer=decision.integer, nullable=decision.nullable,
                           datetime_format=decision.datetime_format, declared=False)
            schema = schema.with_column(spec)
            report[name] = {"type": decision.type, "type_source": "dp", "integer": decision.integer,
                            "nullable": decision.nullable, "type_unreliable": not decision.reliable}
    if "values" in p:
        q = p["values"]
        for name in q["columns"]:
            spec = schema[name]
            entry = report.setdefault(name, {"type": spec.type, "type_source": "metadata"})
            if spec.needs_dp_bounds:
                if spec.type == "datetime":
                    from dpsynth.tabular.encoding import _to_seconds

                    values, grid = _to_seconds(df[name]), datetime_candidates()
                else:
                    from dpsynth.tabular.encoding import _to_float

                    values, grid = _to_float(df[name]), numeric_candidates()
                sigma = q["sigma"]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    lo, hi = dp_bounds(values, sigma, rng, candidates=grid, column=repr(name))
                spec = _with_bounds(spec, lo, hi)
                shown = (lambda v: pd.Timestamp(v, unit="s").isoformat()) if spec.type == "datetime" else float
                entry.update(lower=shown(spec.lower), upper=shown(spec.upper),
                             bounds_unreliable=any(issubclass(w.category, UnreliableDPBoundsWarning) for w in caught))
            elif spec.needs_dp_categories:
                cats = dp_categories(df[name], q["sigma"], q["threshold"], rng, q["min_count"])
                other = spec.other_label if spec.other_label is not None else OTHER_LABEL
                entry.update(kept=[str(c) for c in cats], collapsed=not cats, other_label=str(other),
                             category_threshold=float(q["threshold"]))
                spec = replace(spec, categories=tuple(cats) if cats else (other,), other_label=other)
            schema = schema.with_column(spec)
    release = DomainRelease(schema=schema, dp_row_count=noisy_n, report=report)
    if release.unreliable_bounds:
        warnings.warn(
            "DP bounds are mostly noise (too few rows for this share of the budget) for column(s): "
            + ", ".join(release.unreliable_bounds)
            + "; their synthetic values may be far off. Give public bounds (lower/upper) for them in the metadata.",
            UnreliableDPBoundsWarning,
            stacklevel=2,
        )
    return release


def _with_bounds(spec: ColumnSpec, lo: float, hi: float) -> ColumnSpec:
    if spec.integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        if hi <= lo:
            hi = lo + 1
    return replace(spec, lower=float(lo), upper=float(hi))
