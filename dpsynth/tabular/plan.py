"""The budget split of one ``synthesize`` call, fixed from public inputs before any data access.

Split rule (public, documented, tested):

* If the metadata leaves something to derive (a column's type, the row count, numeric/datetime
  bounds, category sets), a **domain stage** gets a share of epsilon and of delta and the method
  gets the rest: ``PREPROCESSING_FRACTION`` (10%) when every column's type is declared, and
  ``TYPE_STEP_FRACTION`` (40%) when some column's type is left to the DP type step (a first run
  without metadata: discovering types, bounds and categories is then most of what the release
  needs; with 10%, every category of Adult-2,000 fell under the threshold, see docs/tabular.md). With
  complete metadata the method gets everything.
* Inside the domain stage the share is split between the parts needed by
  :data:`dpsynth.tabular.dp_domain.PART_WEIGHTS`; see :func:`dpsynth.tabular.dp_domain.calibrate_domain`.
* The domain stage and the method are charged to the ledger as two entries (the method's
  calibration may depend on the DP row count); the up-front check refuses the whole call when
  the ledger cannot afford ``(epsilon, delta)``, so nothing is read when the budget is short.
  By basic composition the call spends at most ``epsilon_domain + epsilon_method <= epsilon``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpsynth.tabular.dp_domain import (  # noqa: F401 - re-exported: the domain stage's plan lives there
    CategoryDiscoveryUnavailable,
    DomainPlan,
    approx_dp_event,
    calibrate_domain,
)
from dpsynth.tabular.schema import TableSchema

PREPROCESSING_FRACTION = 0.1
TYPE_STEP_FRACTION = 0.4

#: Former name of :func:`calibrate_domain`.
plan_domain = calibrate_domain

def needs_domain_stage(schema: TableSchema) -> bool:
    """True when the metadata leaves a type, the row count, bounds or categories to DP."""
    return (
        schema.row_count is None
        or any(c.needs_dp_type for c in schema.columns)
        or any(c.needs_dp_bounds for c in schema.columns)
        or any(c.needs_dp_categories for c in schema.columns)
    )


def domain_fraction(schema: TableSchema) -> float:
    """The domain stage's share of the budget (public rule above)."""
    if not needs_domain_stage(schema):
        return 0.0
    return TYPE_STEP_FRACTION if any(c.needs_dp_type for c in schema.columns) else PREPROCESSING_FRACTION


def split_budget(epsilon: float, delta: float, schema: TableSchema) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((eps_domain, delta_domain), (eps_method, delta_method))``; the parts add up to the budget."""
    fraction = domain_fraction(schema)
    if fraction == 0.0:
        return (0.0, 0.0), (epsilon, delta)
    eps_d, delta_d = epsilon * fraction, delta * fraction
    return (eps_d, delta_d), (epsilon - eps_d, delta - delta_d)


@dataclass(frozen=True)
class FitPlan:
    """What one fit fixes from public inputs alone (:meth:`dpsynth.tabular.synthesize.Synthesizer.plan`),
    before any ledger is charged and before any row is read; ``Synthesizer.fit`` and the CLI both use it."""

    budget: Any  # the call's PrivacyBudget
    backend: str  # "memory" | "stream" | "ray"
    schema: TableSchema  # the public schema (before the DP domain stage)
    method_name: str
    method: Any  # the built method (its options checked against the public column names)
    domain_budget: tuple[float, float]
    method_budget: tuple[float, float]
    domain_plan: DomainPlan
    source: Any = None  # stream / ray: the TableSource (paths and header only)
