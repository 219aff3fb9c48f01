"""Writing a metadata file: a template from the header, a DP pass, or a public sample.

* :func:`metadata_template` -- reads **column names only** (public); writes every column with a
  placeholder type (``auto``) and comments listing what to fill in from public knowledge.
* :func:`infer_metadata_dp` -- the DP domain stage alone, with the whole budget given: types,
  nullability, row count, bounds and category lists released with DP and charged to a ledger
  (privacy unit: one row). The metadata it writes is a DP release; its ledger must be composed
  with those of later releases from the same data (``dpsynth ledger compose``).
* :func:`metadata_from_public_sample` -- exact types, bounds and categories of a table the user
  declares **public** (e.g. a published sample or a synthetic mock-up). No budget is charged: do not
  use it on private data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.tabular import _accounting as acc
from dpsynth.tabular.dp_domain import calibrate_domain, decide_type, run_domain
from dpsynth.tabular.parsing import INTEGER, MISSING, NUMBER, PARSE_CLASSES, is_missing, parse_classes
from dpsynth.tabular.schema import ColumnSpec, TableSchema, resolve_schema

PRIVACY_UNIT = "row"

_TEMPLATE_HEAD = """\
# dpsynth metadata template: fill it from PUBLIC knowledge only (documentation, code books,
# published statistics), never by looking at the private data.
# For each column set `type` to one of:
#   numerical   -> also `lower`, `upper` (public bounds), optional `integer: true`, `bins` (default 16)
#   categorical -> also `categories: [..]` (public list; spelling and case must match the data),
#                  optional `other_label: "Other"` for values outside the list
#   boolean | datetime (with `lower`/`upper` dates, optional `format: "%Y-%m-%d"`) | id (replaced by 1..n)
#   auto        -> decided by a charged DP step from the data (costs part of the budget)
# `nullable: true` keeps missing values (default false: the output has none).
# Optional: `row_count: N` if the number of rows is public.
"""


def metadata_template(columns: Sequence[str]) -> str:
    """A YAML metadata template for ``columns`` (column names only; nothing else is read)."""
    import yaml

    lines = [_TEMPLATE_HEAD, "columns:"]
    for name in columns:
        key = yaml.safe_dump(str(name), default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"  {key}:")
        lines.append("    type: auto        # or numerical | categorical | boolean | datetime | id")
        lines.append("    # lower: 0\n    # upper: 100\n    # categories: [a, b, c]")
    return "\n".join(lines) + "\n"


def plan_infer_metadata(df: pd.DataFrame, epsilon: float, delta: float, metadata: Any = None):
    """The DP pass's plan from public inputs only: ``(budget, schema, domain plan)``.

    Reads the column names and dtypes of ``df`` (the CLI passes a header-only frame) and the
    metadata, never a value: a bad metadata file or budget is refused here, before any charge.
    """
    budget = acc.PrivacyBudget(epsilon, delta)
    schema = resolve_schema(df, metadata)
    return budget, schema, calibrate_domain(schema, budget.epsilon, budget.delta)


def infer_metadata_dp(
    df: pd.DataFrame,
    epsilon: float,
    delta: float,
    metadata: Any = None,
    *,
    ledger: Any = None,
    source_name: str = "table",
) -> tuple[TableSchema, Any, dict[str, dict[str, Any]]]:
    """Release the metadata ``metadata`` leaves open with DP, spending ``(epsilon, delta)``.

    Returns ``(schema, ledger, report)``. The budget check comes before anything is read.
    """
    budget, schema, plan = plan_infer_metadata(df, epsilon, delta, metadata)
    ledger = ledger or acc.Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=source_name)
    ledger.require_available(budget)
    if not plan.needed:
        return schema, ledger, {}
    with ledger.spend(
        plan,
        operation="tabular.infer_metadata",
        limit=budget,
        provenance={"source_columns": list(map(str, df.columns))},
    ) as step:
        release = run_domain(df, schema, plan, acc.privacy_rng())
        schema = release.schema
        if release.dp_row_count is not None:
            from dataclasses import replace

            schema = replace(schema, row_count=int(release.dp_row_count))
        step.source_fingerprint = acc.fingerprint_dataframe(df)
        step.outputs = {"public_domain": schema.to_dict(), "domain_report": release.report}
    return schema, ledger, release.report


def metadata_from_public_sample(df: pd.DataFrame, max_categories: int = 100) -> TableSchema:
    """Exact metadata of a table the caller declares **public** (no DP; never use on private data).

    Uses the same per-value parse rules and type decision as the DP type step, with exact counts.
    A text column with more than ``max_categories`` distinct values becomes ``id``.
    """
    specs = []
    for name in df.columns:
        s = df[name]
        counts = np.bincount(parse_classes(s), minlength=len(PARSE_CLASSES)).astype(np.float64)
        d = decide_type(counts, sigma=1e-9)
        present = s[~is_missing(s)]
        nullable = bool(counts[MISSING] > 0)
        if d.type == "numerical":
            from dpsynth.tabular.encoding import _to_float

            x = _to_float(present)
            x = x[np.isfinite(x)]
            integer = bool(counts[NUMBER] == 0 and counts[INTEGER] > 0)
            lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
            if hi <= lo:
                hi = lo + 1.0
            specs.append(ColumnSpec(str(name), "numerical", lower=lo, upper=hi, integer=integer, nullable=nullable))
        elif d.type == "datetime":
            from dpsynth.tabular.encoding import _to_seconds

            x = _to_seconds(present)
            x = x[np.isfinite(x)]
            lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 86400.0)
            if hi <= lo:
                hi = lo + 86400.0
            specs.append(ColumnSpec(str(name), "datetime", lower=lo, upper=hi, nullable=nullable,
                                    datetime_format=d.datetime_format))
        elif d.type == "boolean":
            specs.append(ColumnSpec(str(name), "boolean", nullable=nullable))
        else:
            values = sorted({str(v).strip() for v in present})
            if len(values) > max_categories or not values:
                specs.append(ColumnSpec(str(name), "id"))
            else:
                specs.append(ColumnSpec(str(name), "categorical", categories=tuple(values), nullable=nullable))
    return TableSchema(columns=tuple(specs), row_count=None, source="public sample")


def schema_to_yaml(schema: TableSchema, header: str) -> str:
    """The metadata file text (YAML) with a comment ``header`` saying where it came from."""
    import yaml

    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(schema.to_dict(), sort_keys=False, allow_unicode=True)
