"""Loud failures: columns a release cannot represent usefully, found from **DP outputs only**.

Privacy unit: one row. Every quantity used here is a post-processing of a DP release: the domain
stage's report (:class:`dpsynth.tabular.dp_domain.DomainRelease`: categories kept, types decided,
bounds found) and the codes sampled from the fitted DP model. So the warnings (and the CLI's
refusal without ``--allow-degenerate``) may be shown, logged or written anywhere.

Two kinds of problems:

* ``collapsed`` -- DP category discovery kept no value of a categorical column: every output value
  is the ``other`` label (too few rows per value for the noise, or an identifier-like column);
* ``unfit`` -- at least :data:`UNFIT_SHARE` of the synthetic rows fall on the column's
  missing/unfit code: the data's values mostly match none of the metadata's categories (e.g. a case
  mismatch ``North``/``north``), or do not parse as the declared type. Blocking for non-nullable
  columns (the default); a warning for a column declared nullable, which may be mostly empty.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpsynth.errors import DpsynthWarning
from dpsynth.tabular.encoding import TableEncoder
from dpsynth.tabular.schema import TableSchema

#: Share of synthetic rows on the missing/unfit code above which a column is degenerate.
UNFIT_SHARE = 0.9
#: Share above which a non-nullable column gets a (non-blocking) warning.
UNFIT_WARN_SHARE = 0.5


class DegenerateColumnWarning(DpsynthWarning):
    """Some columns of the release carry (almost) no information; see the message."""


@dataclass(frozen=True)
class ColumnIssue:
    """One column problem found from DP outputs."""

    column: str
    kind: str  # "collapsed" | "unfit" | "mostly_unfit"
    message: str
    hint: str
    blocking: bool = True


def find_issues(
    schema: TableSchema,
    domain_report: Mapping[str, Mapping[str, Any]],
    encoder: TableEncoder,
    synthetic_codes: np.ndarray,
) -> list[ColumnIssue]:
    """Column issues from the domain report and the DP model's sampled codes (post-processing)."""
    issues: list[ColumnIssue] = []
    for name, rep in domain_report.items():
        if rep.get("collapsed"):
            from_dp_type = rep.get("type_source") == "dp"
            issues.append(
                ColumnIssue(
                    column=name,
                    kind="collapsed",
                    message=(
                        f"column {name!r}: DP category discovery kept no value (each would need a noisy "
                        f"count above ~{rep.get('category_threshold', float('nan')):.0f} rows), so every output "
                        f"value is {rep.get('other_label', '__other__')!r}"
                        + (" (its type was decided by the DP type step)" if from_dp_type else "")
                    ),
                    hint=(
                        f"{name}: {{type: categorical, categories: [<public list of values>]}}   "
                        f"# or {{type: id}} if it identifies people/rows, or {{type: datetime, lower: ..., upper: ...}} "
                        "if it holds dates"
                    ),
                )
            )
    if synthetic_codes.size:
        for j, enc in enumerate(encoder.encoders):
            share = float(np.mean(synthetic_codes[:, j] == enc.missing_code))
            spec = enc.spec
            if share >= UNFIT_SHARE:
                what = "match none of its categories" if spec.type == "categorical" else f"do not parse as {spec.type}"
                issues.append(
                    ColumnIssue(
                        column=spec.name,
                        kind="unfit",
                        message=(
                            f"column {spec.name!r}: {share:.0%} of the synthetic rows (DP model) are missing or "
                            f"{what} -- the metadata probably does not match the data"
                            + (" (or the column is mostly empty: it is declared nullable)" if spec.nullable else "")
                        ),
                        hint=(
                            f"check {spec.name!r} in the metadata against the data's spelling and case "
                            "(e.g. 'North' vs 'north'), its type, and 'nullable'"
                        ),
                        blocking=not spec.nullable,  # a nullable column may legitimately be mostly missing
                    )
                )
            elif share >= UNFIT_WARN_SHARE and not spec.nullable:
                issues.append(
                    ColumnIssue(
                        column=spec.name,
                        kind="mostly_unfit",
                        message=(
                            f"column {spec.name!r}: {share:.0%} of the synthetic rows (DP model) fell on values that "
                            "are missing or outside the metadata; they were replaced by draws from the column's "
                            "other synthetic values"
                        ),
                        hint=f"declare {spec.name!r} nullable: true, or complete its category list",
                        blocking=False,
                    )
                )
    return issues


def warn_issues(issues: list[ColumnIssue]) -> None:
    """One :class:`DegenerateColumnWarning` listing every issue (nothing when there is none)."""
    if not issues:
        return
    lines = [f"- {i.message}. Fix: {i.hint}" for i in issues]
    warnings.warn(
        "the release has column(s) with little or no information (found from DP outputs):\n" + "\n".join(lines),
        DegenerateColumnWarning,
        stacklevel=3,
    )
