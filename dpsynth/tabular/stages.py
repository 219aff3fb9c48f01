"""The two private stages shared by every tabular fit (in memory and on the stream / ray backends).

Privacy unit: one row. Each stage is one private step of the plan -> spend -> run shape: the
method is calibrated from public inputs only, charged through ``ledger.spend`` before it reads
the private data, and its completion (or failure) is recorded on exit.

The source fingerprint reads every record too (it hashes them), so it is taken inside the first
charged stage (:class:`SourceFingerprint`), never before the charge: an input on which it fails
is charged and refused exactly like any other.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np

from dpsynth.accounting import PrivacyBudget
from dpsynth.tabular.dp_domain import DomainPlan, DomainRelease
from dpsynth.tabular.methods.base import EncodedDomain, FittedTabularModel, MethodPlan


class SourceFingerprint:
    """The source fingerprint of one fit, computed on first use -- inside a charged stage -- and
    then the same value for every stage of the fit."""

    def __init__(self, compute: Callable[[], str]) -> None:
        self._compute = compute
        self._value: str | None = None

    def __call__(self) -> str:
        if self._value is None:
            self._value = str(self._compute())
        return self._value


Fingerprint = Union[str, SourceFingerprint]


def _fingerprint(fingerprint: Fingerprint) -> str:
    return fingerprint() if callable(fingerprint) else fingerprint


def fit_method_stage(
    ledger: Any,
    method: Any,
    method_name: str,
    data: Any,
    domain: EncodedDomain,
    budget: PrivacyBudget,
    n_public: float,
    noise_rng: np.random.Generator,
    fingerprint: Fingerprint,
    *,
    seeded: bool,
    progress: bool,
) -> tuple[MethodPlan, FittedTabularModel]:
    """Stage 2 of every tabular fit: calibrate the method (public inputs), charge it, fit it.

    ``data`` is the private encoded table: a code array, or a counts provider on the stream / ray
    backends. Returns the plan and the fitted model.
    """
    plan = method.calibrate(budget.epsilon, budget.delta, domain, float(n_public))
    with ledger.spend(
        plan,
        operation=f"tabular.fit.{method_name}",
        limit=budget,
        provenance={"n_public": float(n_public), "seeded": seeded},
    ) as step:
        model = method.fit(data, plan, noise_rng, progress=progress)
        step.source_fingerprint = _fingerprint(fingerprint)
        step.outputs = {"model": method_name}
    return plan, model


def domain_stage(
    ledger: Any,
    plan: DomainPlan,
    schema: Any,
    run: Callable[[], DomainRelease],
    limit: PrivacyBudget | None,
    fingerprint: Fingerprint,
    source_columns: Sequence[str],
) -> tuple[DomainRelease, float | None]:
    """Stage 1: release the parts of the domain the metadata leaves open (``run`` reads the data).

    Charged through ``ledger.spend`` before ``run`` is called; nothing is charged or read when
    ``plan`` needs nothing. Returns the release and the public row count (metadata's, else the DP one).
    """
    if not plan.needed:
        return DomainRelease(schema=schema, dp_row_count=None, report={}), schema.row_count
    with ledger.spend(
        plan, operation="tabular.domain", limit=limit, provenance={"source_columns": list(map(str, source_columns))}
    ) as step:
        release = run()
        step.source_fingerprint = _fingerprint(fingerprint)
        step.outputs = {"public_domain": release.schema.to_dict(), "dp_row_count": release.dp_row_count,
                        "domain_report": release.report}
    n_public = float(release.dp_row_count) if release.dp_row_count is not None else release.schema.row_count
    return release, n_public
