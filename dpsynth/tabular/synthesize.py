"""``synthesize`` and ``Synthesizer``: a sensitive table in, a DP synthetic table + ledger out.

Privacy unit: **one row** of the input table; neighbouring tables differ by adding or removing one
row. Guarantee: the released synthetic data, the released domain (bounds, categories, noisy row
count) and everything written beside them are ``(epsilon, delta)``-DP for the budget given, as
recorded and checked by the ledger. Public inputs (metadata, column names and storage types,
method options, the number of rows asked for) are not protected.

Order of work in :meth:`Synthesizer.fit` (see ``docs/accounting-api.md``):

1. :meth:`Synthesizer.plan` -- from public inputs only: validate the budget; resolve the public
   schema (metadata + column names + caller-vouched dtypes, never values); choose and build the
   method by the public rule and check its options (``target``, ``workload``) against the public
   column names; on the stream / ray backends check the method and the metadata's completeness;
   calibrate the domain stage. The CLI runs the same step before it charges the source budget.
   Then refuse if the ledger cannot afford the call -- **before any data-dependent check**, so an
   exhausted ledger answers the same whatever the data holds;
2. there is no data-dependent refusal (not even on the number of rows); errors raised before the
   charge name only public things (column names, arguments), never counts or values; the source
   fingerprint (which hashes every record) is taken inside the first charged stage;
3. if the metadata leaves parts of the domain open (types, row count, bounds, categories): charge
   the **domain stage** (:mod:`dpsynth.tabular.plan`), then release them with DP
   (:func:`dpsynth.tabular.dp_domain.run_domain`);
4. encode the table onto the now-public finite domain (a total, per-value map: no refusals);
   calibrate the method for the rest of the budget; charge it; fit it;
5. :meth:`Synthesizer.sample` draws rows from the fitted model -- post-processing, recorded in the
   ledger at zero cost -- and reports degenerate columns found from DP outputs
   (:mod:`dpsynth.tabular.diagnostics`).

``seed`` controls only the non-private randomness: drawing synthetic rows from the fitted DP
model (post-processing). The privacy noise (DP domain, measurements, selections, DP-SGD) is
always drawn from a generator seeded by the operating system's entropy, so a guessed or
published seed cannot strip it; that seed is never known to anyone and never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.constants import DEFAULT_DELTA
from dpsynth.errors import DpsynthError
from dpsynth.tabular import _accounting as acc
from dpsynth.tabular.diagnostics import ColumnIssue, find_issues, warn_issues
from dpsynth.tabular.dp_domain import DomainPlan, DomainRelease, calibrate_domain, run_domain
from dpsynth.tabular.encoding import TableEncoder
from dpsynth.tabular.methods import get_method, resolve_method_name
from dpsynth.tabular.methods.base import EncodedDomain, FittedTabularModel, MethodPlan
from dpsynth.tabular.methods.workload import check_public_options
from dpsynth.tabular.plan import FitPlan, split_budget
from dpsynth.tabular.stages import SourceFingerprint, domain_stage, fit_method_stage
from dpsynth.tabular.schema import MetadataError, TableSchema, resolve_schema

PRIVACY_UNIT = "row"


class EmptyTableError(DpsynthError, ValueError):
    """The table has no columns, or no column to model (never raised for a small number of rows)."""


def _validate_columns(df: Any) -> pd.DataFrame:
    """Checks on public things only: the type of ``df`` and its column names."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise EmptyTableError("the table has no columns")
    if df.columns.duplicated().any():
        dup = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise MetadataError(f"duplicate column name(s): {', '.join(dup)}")
    return df


def _validate_budget(epsilon: Any, delta: Any) -> "acc.PrivacyBudget":
    budget = acc.PrivacyBudget(epsilon, delta)
    if budget.delta <= 0:
        raise acc.InvalidBudgetError(
            "delta must be in (0, 1): the marginal and DP-SGD methods use Gaussian noise, which needs delta > 0"
        )
    return budget


def _validate_rows(rows: Any) -> int | None:
    if rows is None:
        return None
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    return int(rows)


@dataclass
class SynthesisResult:
    """Synthetic data with its ledger. ``save`` writes data, ledger and card together."""

    data: pd.DataFrame
    ledger: "acc.Ledger"
    method: str
    schema: TableSchema
    quality: dict[str, Any] | None = None
    issues: list[ColumnIssue] = field(default_factory=list)  # from DP outputs only

    def save(self, path: str | Path, force: bool = False) -> Any:
        """Write ``path`` (.csv, .jsonl or .parquet) with ``<path>.ledger.json`` and ``<path>.card.yaml``.

        Refuses to overwrite any of the three unless ``force``; every file is written to a
        temporary name and renamed, so an interrupted save leaves no partial output.
        """
        from dpsynth.card import build_card
        from dpsynth.release import write_release

        path = Path(path)
        writer = _writer_for(path, self.data)
        card = build_card(
            self.ledger,
            generator_model={"family": "dpsynth.tabular", "method": self.method},
            synthetic_ratio=None,
            filters=[],
            extra={"tabular": {"rows": int(len(self.data)), "columns": list(map(str, self.data.columns)),
                               "public_domain": self.schema.to_dict()}},
        )
        return write_release(path, writer, self.ledger, card, force=force)


def _writer_for(path: Path, data: pd.DataFrame):
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return lambda tmp: data.to_csv(tmp, index=False)
    if suffix == ".jsonl":
        return lambda tmp: data.to_json(tmp, orient="records", lines=True, date_format="iso")
    if suffix == ".parquet":
        return lambda tmp: data.to_parquet(tmp, index=False)
    raise ValueError(f"unsupported output format {suffix!r}; use .csv, .jsonl or .parquet")


@dataclass
class Synthesizer:
    """Fit once under a DP budget, then sample any number of rows for free (post-processing)."""

    epsilon: float
    delta: float = DEFAULT_DELTA
    method: str = "auto"
    metadata: Any = None
    seed: int | None = None
    ledger: Any = None
    progress: bool = True
    source_name: str = "table"
    method_options: dict[str, Any] = field(default_factory=dict)
    backend: str = "memory"  # "stream" | "ray": fit reads CSV/Parquet paths through counts (backends.py)
    ray_address: str | None = None

    # set by fit()
    schema_: TableSchema | None = field(default=None, init=False)
    method_: str | None = field(default=None, init=False)
    plan_: MethodPlan | None = field(default=None, init=False)
    domain_plan_: DomainPlan | None = field(default=None, init=False)
    domain_release_: DomainRelease | None = field(default=None, init=False)
    n_public_: float | None = field(default=None, init=False)
    model_: FittedTabularModel | None = field(default=None, init=False)
    encoder_: TableEncoder | None = field(default=None, init=False)
    _rng: np.random.Generator | None = field(default=None, init=False, repr=False)

    def plan(self, data: Any) -> FitPlan:
        """Every check and choice of a fit that needs public inputs only; reads no record.

        ``data``: on the memory backend a DataFrame (only its column names and dtypes are used; the
        CLI passes a header-only frame), on ``stream`` / ``ray`` a CSV/Parquet path (only its header
        line or Parquet schema is read). :meth:`fit` runs it first; the CLI runs it before charging
        the source budget, so bad public input (metadata, method, options, backend) costs nothing.
        """
        budget = _validate_budget(self.epsilon, self.delta)
        backend = str(self.backend).lower()
        source = None
        if backend == "memory":
            schema = resolve_schema(_validate_columns(data), self.metadata)
        else:  # scale-out: files read through counts only
            from dpsynth.tabular.backends import plan_source

            source, schema = plan_source(backend, data, self.metadata)
        modelled = [c for c in schema.columns if c.type != "id"]
        if not modelled:
            raise EmptyTableError("every column is an id column; there is nothing to synthesise")
        method_name = resolve_method_name(self.method, len(modelled))
        if backend != "memory":
            from dpsynth.tabular.backends import check_count_method

            check_count_method(method_name, backend)
        method = get_method(method_name, **self.method_options)
        check_public_options(method, [c.name for c in modelled])
        domain_budget, method_budget = split_budget(budget.epsilon, budget.delta, schema)
        domain_plan = calibrate_domain(schema, *domain_budget)  # public; may refuse before any work
        if backend != "memory":
            from dpsynth.tabular.backends import check_domain_plan

            check_domain_plan(domain_plan)
        if backend == "ray":  # reachable before any charge: a bad address is public input, refused for free
            from dpsynth.ray_support import connect

            connect(self.ray_address, what="the Ray backend")
        return FitPlan(budget, backend, schema, method_name, method, domain_budget, method_budget, domain_plan,
                       source)

    def fit(self, df: pd.DataFrame) -> "Synthesizer":
        """Spend the budget: release the open parts of the domain, then fit the method."""
        # ---- public inputs only: budget, schema, method, plans, ledger check --------------------
        fit_plan = self.plan(df)
        if fit_plan.backend != "memory":  # scale-out: files read through counts only
            from dpsynth.tabular.backends import fit_with_backend

            return fit_with_backend(self, fit_plan)
        budget, schema, method_name, method = fit_plan.budget, fit_plan.schema, fit_plan.method_name, fit_plan.method
        (eps_d, delta_d), (eps_m, delta_m) = fit_plan.domain_budget, fit_plan.method_budget
        domain_plan = fit_plan.domain_plan

        ledger = self.ledger or acc.Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=self.source_name)
        ledger.require_available(budget)
        # No refusal on the number of rows, ever: whether a call is refused must not depend on the
        # data (a 1-row table and its 2-row neighbour must both release). Tiny tables give noise.
        noise_rng = acc.privacy_rng()  # privacy noise: OS entropy, never the user's seed
        rng = np.random.default_rng(self.seed)  # post-processing only (sampling rows from the model)
        # hashes every record: taken inside the first charged stage, never before the charge
        fingerprint = SourceFingerprint(lambda: acc.fingerprint_dataframe(df))

        # ---- stage 1: the DP domain -------------------------------------------------------------
        release, n_public = domain_stage(
            ledger, domain_plan, schema, lambda: run_domain(df, schema, domain_plan, noise_rng),
            acc.PrivacyBudget(eps_d, delta_d) if eps_d > 0 else None, fingerprint, df.columns,
        )
        schema = release.schema
        assert n_public is not None

        # ---- stage 2: the method ---------------------------------------------------------------
        encoder = TableEncoder.from_schema(schema)
        codes = encoder.encode(df)
        domain = EncodedDomain(encoder.columns, encoder.sizes)
        plan, model = fit_method_stage(
            ledger, method, method_name, codes, domain, acc.PrivacyBudget(eps_m, delta_m), float(n_public),
            noise_rng, fingerprint, seeded=self.seed is not None, progress=self.progress,
        )

        return self._set_fitted(ledger, schema, method_name, plan, domain_plan, release, n_public, model, encoder, rng)

    def _set_fitted(
        self,
        ledger: Any,
        schema: TableSchema,
        method_name: str,
        plan: MethodPlan,
        domain_plan: DomainPlan,
        release: DomainRelease,
        n_public: float,
        model: FittedTabularModel,
        encoder: TableEncoder,
        rng: np.random.Generator,
    ) -> "Synthesizer":
        """Record the state a fit leaves (in memory here, or by a scale-out backend); returns ``self``."""
        self.ledger = ledger
        self.schema_, self.method_, self.plan_, self.domain_plan_ = schema, method_name, plan, domain_plan
        self.domain_release_ = release
        self.n_public_, self.model_, self.encoder_, self._rng = float(n_public), model, encoder, rng
        return self

    def sample(self, n: int | None = None) -> SynthesisResult:
        """``n`` synthetic rows (default: the public / DP row count). Free: post-processing."""
        if self.model_ is None or self.encoder_ is None or self._rng is None:
            raise RuntimeError("call fit() before sample()")
        n = _validate_rows(n)
        if n is None:
            n = max(1, int(round(self.n_public_ or 1)))
        codes = self.model_.sample(n, self._rng)
        report = self.domain_release_.report if self.domain_release_ is not None else {}
        issues = find_issues(self.schema_, report, self.encoder_, codes)  # DP outputs only
        warn_issues(issues)
        data = self.encoder_.decode(codes, self._rng)
        self.ledger.record_postprocessing(
            operation="tabular.sample",
            description=f"{n} rows sampled from the fitted DP {self.method_} model (post-processing, no privacy cost)",
            parameters={"rows": int(n), "method": self.method_},
        )
        assert self.schema_ is not None and self.method_ is not None
        snapshot = self.ledger if isinstance(self.ledger, acc.Ledger) else self.ledger.load()
        return SynthesisResult(data=data, ledger=snapshot, method=self.method_, schema=self.schema_, issues=issues)


def synthesize(
    df: pd.DataFrame,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    rows: int | None = None,
    method: str = "auto",
    metadata: Any = None,
    seed: int | None = None,
    *,
    ledger: Any = None,
    progress: bool = True,
    source_name: str = "table",
    method_options: dict[str, Any] | None = None,
    backend: str = "memory",
    ray_address: str | None = None,
) -> SynthesisResult:
    """A DP synthetic version of ``df`` (same columns, same order) and its ledger.

    Args:
        df: the sensitive table (privacy unit: one row).
        epsilon, delta: the budget of this call (delta in (0, 1); default 1e-6, a public constant).
        rows: rows to generate (default: the metadata row count, else a DP row count).
        method: ``auto`` | ``aim`` | ``mst`` | ``independent`` | ``dpsgd_vae``.
        metadata: public metadata (path to JSON/YAML, dict, or SDV ``Metadata``); see
            :mod:`dpsynth.tabular.schema`. Undeclared columns: a non-text dtype is taken as the
            column's type (**the caller vouches that the dtypes are public**); a text column's
            type is released by the charged DP type step.
        seed: seeds only the sampling of rows from the fitted DP model (post-processing); the
            privacy noise always comes from OS entropy.
        ledger: an existing :class:`dpsynth.accounting.Ledger` to charge (default: a new one
            with this budget).
        backend: ``memory`` (default, ``df`` is a DataFrame) | ``stream`` | ``ray`` (``df`` is a
            CSV/Parquet file or directory read through counts; see :mod:`dpsynth.tabular.backends`).
        ray_address: the Ray cluster for ``backend="ray"`` (default: a local one).

    Raises:
        InvalidBudgetError, BudgetExceededError (before any data access), MetadataError,
        UnknownColumnError, EmptyTableError, UnknownMethodError (all ``DpsynthError``).
        Warns ``DegenerateColumnWarning`` when DP outputs show a column carries no information.
    """
    rows = _validate_rows(rows)
    synth = Synthesizer(
        epsilon=epsilon,
        delta=delta,
        method=method,
        metadata=metadata,
        seed=seed,
        ledger=ledger,
        progress=progress,
        source_name=source_name,
        method_options=dict(method_options or {}),
        backend=backend,
        ray_address=ray_address,
    ).fit(df)
    return synth.sample(rows)
