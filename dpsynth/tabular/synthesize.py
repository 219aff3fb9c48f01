"""``synthesize`` and ``Synthesizer``: a sensitive table in, a DP synthetic table + ledger out.

Privacy unit: **one row** of the input table; neighbouring tables differ by adding or removing one
row. Guarantee: the released synthetic data, the released domain (bounds, categories, noisy row
count) and everything written beside them are ``(epsilon, delta)``-DP for the budget given, as
recorded and checked by the ledger. Public inputs (metadata, column names and storage types,
method options, the number of rows asked for) are not protected.

Order of work in :meth:`Synthesizer.fit` (see ``docs/accounting-api.md``):

1. validate the budget and the table's shape; resolve the public schema (metadata + dtypes);
   choose the method by the public rule; refuse early if the ledger cannot afford the call;
2. if the metadata leaves parts of the domain open: charge the **domain stage** (10% of the
   budget, :mod:`dpsynth.tabular.plan`), then release them with DP (:mod:`.dp_domain`);
3. encode the table onto the now-public finite domain; calibrate the method for the rest of the
   budget; charge it; fit it;
4. :meth:`Synthesizer.sample` draws rows from the fitted model -- post-processing, recorded in the
   ledger at zero cost.

``seed`` controls only the non-private randomness: drawing synthetic rows from the fitted DP
model (post-processing). The privacy noise (DP domain, measurements, selections, DP-SGD) is
always drawn from a generator seeded by the operating system's entropy, so a guessed or
published seed cannot strip it; that seed is never known to anyone and never written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.tabular import _accounting as acc
from dpsynth.tabular import dp_domain
from dpsynth.tabular.encoding import TableEncoder
from dpsynth.tabular.methods import get_method, resolve_method_name
from dpsynth.tabular.methods.base import EncodedDomain, FittedTabularModel, MethodPlan
from dpsynth.tabular.plan import DomainPlan, plan_domain, split_budget
from dpsynth.tabular.schema import ColumnSpec, TableSchema, resolve_schema

#: Public default delta (never derived from the row count).
DEFAULT_DELTA = 1e-6
PRIVACY_UNIT = "row"


class EmptyTableError(ValueError):
    """The table has no rows, one row, or no columns."""


def _validate_table(df: Any) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise EmptyTableError("the table has no columns")
    if len(df) == 0:
        raise EmptyTableError("the table has no rows")
    if len(df) == 1:
        raise EmptyTableError("the table has a single row; there is nothing to synthesise privately from it")
    if df.columns.duplicated().any():
        dup = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise ValueError(f"duplicate column name(s): {', '.join(dup)}")
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

    # set by fit()
    schema_: TableSchema | None = field(default=None, init=False)
    method_: str | None = field(default=None, init=False)
    plan_: MethodPlan | None = field(default=None, init=False)
    domain_plan_: DomainPlan | None = field(default=None, init=False)
    n_public_: float | None = field(default=None, init=False)
    model_: FittedTabularModel | None = field(default=None, init=False)
    encoder_: TableEncoder | None = field(default=None, init=False)
    _rng: np.random.Generator | None = field(default=None, init=False, repr=False)

    def fit(self, df: pd.DataFrame) -> "Synthesizer":
        """Spend the budget: release the open parts of the domain, then fit the method."""
        budget = _validate_budget(self.epsilon, self.delta)
        df = _validate_table(df)
        schema = resolve_schema(df, self.metadata)
        modelled = [c for c in schema.columns if c.type != "id"]
        if not modelled:
            raise EmptyTableError("every column is an id column; there is nothing to synthesise")
        method_name = resolve_method_name(self.method, len(modelled))
        method = get_method(method_name, **self.method_options)
        (eps_d, delta_d), (eps_m, delta_m) = split_budget(budget.epsilon, budget.delta, schema)
        domain_plan = plan_domain(schema, eps_d, delta_d)  # public; may refuse before any work

        ledger = self.ledger or acc.Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=self.source_name)
        remaining_eps, remaining_delta = ledger.remaining
        if budget.epsilon > remaining_eps * (1 + 1e-12) or budget.delta > remaining_delta * (1 + 1e-12):
            raise acc.BudgetExceededError(
                f"this call needs epsilon={budget.epsilon:g}, delta={budget.delta:g} but the ledger has only "
                f"epsilon={remaining_eps:.6g}, delta={remaining_delta:.3g} left; nothing was read or spent",
                (budget.epsilon, budget.delta),
                (remaining_eps, remaining_delta),
            )
        _precheck_columns(df, schema)  # fail on malformed values before anything is spent
        noise_rng = acc.privacy_rng()  # privacy noise: OS entropy, never the user's seed
        rng = np.random.default_rng(self.seed)  # post-processing only (sampling rows from the model)
        fingerprint = acc.fingerprint_dataframe(df)

        # ---- stage 1: the DP domain -------------------------------------------------------------
        n_public: float | None = schema.row_count
        if domain_plan.needed:
            with ledger.spend(
                domain_plan,
                operation="tabular.domain",
                limit=acc.PrivacyBudget(eps_d, delta_d) if eps_d > 0 else None,
                provenance={"source_columns": list(map(str, df.columns))},
            ) as step:
                schema, noisy_n = release_domain(df, schema, domain_plan, noise_rng)
                if noisy_n is not None:
                    n_public = float(noisy_n)
                step.source_fingerprint = fingerprint
                step.outputs = {"public_domain": schema.to_dict(), "dp_row_count": noisy_n}
        assert n_public is not None

        # ---- stage 2: the method ---------------------------------------------------------------
        encoder = TableEncoder.from_schema(schema)
        codes = encoder.encode(df)
        domain = EncodedDomain(encoder.columns, encoder.sizes)
        plan = method.calibrate(eps_m, delta_m, domain, float(n_public))
        with ledger.spend(
            plan,
            operation=f"tabular.fit.{method_name}",
            limit=acc.PrivacyBudget(eps_m, delta_m),
            provenance={"n_public": float(n_public), "seeded": self.seed is not None},
        ) as step:
            model = method.fit(codes, plan, noise_rng, progress=self.progress)
            step.source_fingerprint = fingerprint
            step.outputs = {"model": method_name}

        self.ledger = ledger
        self.schema_, self.method_, self.plan_, self.domain_plan_ = schema, method_name, plan, domain_plan
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
        data = self.encoder_.decode(codes, self._rng)
        self.ledger.record_postprocessing(
            operation="tabular.sample",
            description=f"{n} rows sampled from the fitted DP {self.method_} model (post-processing, no privacy cost)",
            parameters={"rows": int(n), "method": self.method_},
        )
        assert self.schema_ is not None and self.method_ is not None
        snapshot = self.ledger if isinstance(self.ledger, acc.Ledger) else self.ledger.load()
        return SynthesisResult(data=data, ledger=snapshot, method=self.method_, schema=self.schema_)


def _precheck_columns(df: pd.DataFrame, schema: TableSchema) -> None:
    """Encode every column whose public domain is already complete, so that values the schema
    refuses (missing in a non-nullable column, text in a numeric one) raise before any charge."""
    from dpsynth.tabular.encoding import ColumnEncoder

    for spec in schema.columns:
        if spec.type == "id" or spec.needs_dp_bounds or spec.needs_dp_categories:
            continue
        ColumnEncoder.from_spec(spec).encode(df[spec.name])


def release_domain(
    df: pd.DataFrame, schema: TableSchema, plan: DomainPlan, rng: np.random.Generator
) -> tuple[TableSchema, int | None]:
    """Run the DP domain mechanisms of ``plan``; returns the completed schema and the DP row count."""
    p = plan.parameters
    noisy_n = None
    if "row_count" in p:
        noisy_n = dp_domain.dp_row_count(len(df), p["row_count"]["sigma"], rng)
    if "bounds" in p:
        sigma_b = p["bounds"]["sigma"]
        for name in p["bounds"]["columns"]:
            spec = schema[name]
            if spec.type == "datetime":
                from dpsynth.tabular.encoding import _to_seconds

                values, grid = _to_seconds(df[name]), dp_domain.datetime_candidates()
            else:
                values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
                grid = dp_domain.numeric_candidates()
            lo, hi = dp_domain.dp_bounds(values, sigma_b, rng, candidates=grid, column=repr(name))
            schema = schema.with_column(_with_bounds(spec, lo, hi))
    if "categories" in p:
        q = p["categories"]
        for name in q["columns"]:
            spec = schema[name]
            cats = dp_domain.dp_categories(df[name], q["sigma"], q["threshold"], rng, q["min_count"])
            other = spec.other_label if spec.other_label is not None else "__other__"
            if not cats:
                cats = [other]
            schema = schema.with_column(_replace(spec, categories=tuple(cats), other_label=other))
    return schema, noisy_n


def _replace(spec: ColumnSpec, **kw: Any) -> ColumnSpec:
    from dataclasses import replace

    return replace(spec, **kw)


def _with_bounds(spec: ColumnSpec, lo: float, hi: float) -> ColumnSpec:
    if spec.integer:
        lo, hi = math.floor(lo), math.ceil(hi)
        if hi <= lo:
            hi = lo + 1
    return _replace(spec, lower=float(lo), upper=float(hi))


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
) -> SynthesisResult:
    """A DP synthetic version of ``df`` (same columns, same order) and its ledger.

    Args:
        df: the sensitive table (privacy unit: one row).
        epsilon, delta: the budget of this call (delta in (0, 1); default 1e-6, a public constant).
        rows: rows to generate (default: the metadata row count, else a DP row count).
        method: ``auto`` | ``aim`` | ``mst`` | ``independent`` | ``dpsgd_vae``.
        metadata: public metadata (path to JSON/YAML, dict, or SDV ``Metadata``); see
            :mod:`dpsynth.tabular.schema`.
        seed: seeds only the sampling of rows from the fitted DP model (post-processing); the
            privacy noise always comes from OS entropy.
        ledger: an existing :class:`dpsynth.accounting.Ledger` to charge (default: a new one
            with this budget).

    Raises:
        InvalidBudgetError, BudgetExceededError (before any data access), MetadataError,
        UnknownColumnError, IdentifierColumnError, EmptyTableError, UnknownMethodError.
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
    ).fit(df)
    return synth.sample(rows)
