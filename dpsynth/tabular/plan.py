"""The budget split of one ``synthesize`` call, fixed from public inputs before any data access.

Split rule (public, documented, tested):

* If the metadata leaves something to derive (row count, numeric/datetime bounds, category sets),
  a **domain stage** gets ``PREPROCESSING_FRACTION`` (10%) of epsilon and of delta; the method
  gets the rest. With complete metadata the method gets everything.
* Inside the domain stage the share is split equally between the parts that are needed:
  ``row_count`` (Gaussian), ``bounds`` (one Gaussian histogram over public bins per column), ``categories`` (thresholded
  Gaussian histograms, recorded as one ``ApproxDpEvent(epsilon, delta)`` for all of them: a
  Gaussian part at ``delta/2`` plus ``delta/(2k)`` per column for the threshold; see
  :mod:`dpsynth.tabular.dp_domain`).
* The domain stage and the method are charged to the ledger as two entries (the method's
  calibration may depend on the DP row count); the up-front check refuses the whole call when
  the ledger cannot afford ``(epsilon, delta)``, so nothing is read when the budget is short.
  By basic composition the call spends at most ``epsilon_domain + epsilon_method <= epsilon``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dp_accounting import dp_event

from dpsynth.tabular import _accounting as acc
from dpsynth.tabular.dp_domain import threshold_for
from dpsynth.tabular.schema import TableSchema

PREPROCESSING_FRACTION = 0.1


class CategoryDiscoveryUnavailable(ValueError):
    """DP category discovery needs an approximate-DP ledger event the accounting lacks."""


@dataclass(frozen=True)
class DomainPlan:
    """The calibrated domain stage: its ledger stages and public parameters."""

    epsilon: float
    delta: float
    stages: tuple = ()
    parameters: dict = field(default_factory=dict)

    @property
    def needed(self) -> bool:
        return bool(self.stages)

    # the PrivatePlan protocol of dpsynth.accounting.ledger (what ledger.spend charges)
    mechanism = "dp-domain (gaussian row count, gaussian histograms for bounds, thresholded histograms for categories)"
    event = None  # the charge is the composition of ``stages``
    sampling = "none"


def needs_domain_stage(schema: TableSchema) -> bool:
    """True when the metadata leaves the row count, bounds or categories to DP."""
    return (
        schema.row_count is None
        or any(c.needs_dp_bounds for c in schema.columns)
        or any(c.needs_dp_categories for c in schema.columns)
    )


def split_budget(epsilon: float, delta: float, schema: TableSchema) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((eps_domain, delta_domain), (eps_method, delta_method))``; the parts add up to the budget."""
    if not needs_domain_stage(schema):
        return (0.0, 0.0), (epsilon, delta)
    eps_d, delta_d = epsilon * PREPROCESSING_FRACTION, delta * PREPROCESSING_FRACTION
    return (eps_d, delta_d), (epsilon - eps_d, delta - delta_d)


def approx_dp_event(epsilon: float, delta: float) -> dp_event.DpEvent:
    """A black-box (epsilon, delta)-DP event, if the accounting offers one."""
    from dpsynth.accounting import events

    cls = getattr(events, "ApproxDpEvent", None)
    if cls is None:
        raise CategoryDiscoveryUnavailable(
            "the metadata gives no category list for some categorical column(s), and DP category "
            "discovery (a thresholded histogram, an approximate-DP mechanism) cannot be recorded by "
            "this version of the accounting. List the categories in the metadata (public), declare "
            "an 'other_label', or declare the column as 'id'."
        )
    return cls(epsilon=epsilon, delta=delta)


def plan_domain(schema: TableSchema, epsilon: float, delta: float) -> DomainPlan:
    """Calibrate the DP domain stage within ``(epsilon, delta)`` (public inputs only)."""
    parts = []
    if schema.row_count is None:
        parts.append("row_count")
    bound_cols = [c.name for c in schema.columns if c.needs_dp_bounds]
    cat_cols = [c.name for c in schema.columns if c.needs_dp_categories]
    if bound_cols:
        parts.append("bounds")
    if cat_cols:
        parts.append("categories")
    if not parts:
        return DomainPlan(0.0, 0.0)
    if delta <= 0:
        raise ValueError("deriving the domain with DP needs delta > 0")
    eps_part, delta_part = epsilon / len(parts), delta / len(parts)
    stages = []
    params: dict = {"epsilon": epsilon, "delta": delta}
    if "row_count" in parts:
        sigma = float(acc.gaussian_noise_multiplier(eps_part, delta_part))
        stages.append(acc.Stage("row_count", dp_event.GaussianDpEvent(sigma), delta_part))
        params["row_count"] = {"sigma": sigma}
    if "bounds" in parts:
        k = len(bound_cols)
        sigma = float(acc.gaussian_noise_multiplier(eps_part, delta_part, count=k))
        stages.append(acc.Stage("bounds", dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), k), delta_part))
        params["bounds"] = {"columns": bound_cols, "sigma": sigma, "histogram": "public geometric bins"}
    if "categories" in parts:
        k = len(cat_cols)
        gauss_delta = delta_part / 2
        threshold_delta = delta_part / (2 * k)
        sigma = float(acc.gaussian_noise_multiplier(eps_part, gauss_delta, count=k))
        event = approx_dp_event(eps_part, delta_part)
        stages.append(acc.Stage("categories", event, delta_part))
        params["categories"] = {
            "columns": cat_cols,
            "sigma": sigma,
            "threshold": threshold_for(sigma, threshold_delta),
            "min_count": 2,
            "threshold_delta_per_column": threshold_delta,
        }
    return DomainPlan(epsilon=epsilon, delta=delta, stages=tuple(stages), parameters=params)
