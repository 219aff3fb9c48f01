"""Scale-out backends for tabular synthesis: ``memory`` (default), ``stream`` and ``ray``.

Privacy unit: one row; the guarantee is the in-memory one. The ``stream`` and ``ray`` backends
change only *where exact counts are computed* (:mod:`dpsynth.tabular.private_table`): the
budget split, the calibration, the mechanisms, their noise (drawn once, in this driver process,
from :mod:`dpsynth.randomness`) and the ledger entries are those of
:meth:`dpsynth.tabular.synthesize.Synthesizer.fit`, entry for entry.

What the counting backends need (checked from public inputs by :meth:`Synthesizer.plan
<dpsynth.tabular.synthesize.Synthesizer.plan>`, before any charge and before any data row is read;
the CLI runs that step before it charges the source budget):

* a **marginal method** (``aim``, ``mst``, ``independent``; ``auto`` picks one of the first two).
  DP-SGD methods read rows, not counts, and stay in-process: they are refused here.
* **complete public metadata** for the modelled columns: each column's type, and bounds /
  category lists. The DP bounds and DP category discovery of the in-memory path read raw values
  (unbounded value sets); they are not offered on these backends and a missing part is refused
  with the list of columns. The row count may be left out: the DP row count is a count
  (``counts(())``) and is released exactly as in memory (Gaussian, same ledger stage).
* column names come from the file header (public schema, as in memory): the CSV header line,
  read with the in-memory path's header reader, or the Parquet schema -- no data row. The CSV
  readers take each column's storage type from the metadata, never from the data.

The data rows are first read inside the first charged stage (the method's workload is counted in
that one pass). A row the reader cannot parse then fails the call with a fixed message that names
the file only; the charge stays, recorded as failed -- as when the in-memory CLI's reader fails
after the source-budget charge.

Sampling rows from the fitted model is post-processing; :func:`write_streamed` draws and writes
them in chunks so the output never has to fit in memory.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.errors import DpsynthError
from dpsynth.tabular.output_parts import (  # noqa: F401 - output_arrow_schema re-exported
    output_arrow_schema,
    release_card,
    sample_frames,
    write_part_file,
)
from dpsynth.tabular.private_table import (
    DEFAULT_CHUNK_ROWS,
    RayCounts,
    StreamingCounts,
    TableSource,
    require_ray,
)

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.tabular.synthesize import Synthesizer

BACKENDS = ("memory", "stream", "ray")
#: Methods that read the private table only through counts.
COUNT_METHODS = ("aim", "mst", "independent")


class BackendError(DpsynthError, ValueError):
    """The backend cannot run this request (unknown backend, DP-SGD method, incomplete metadata)."""


def check_backend(backend: str) -> str:
    """The normalised backend name; ``ray`` also checks that Ray is importable (clear error)."""
    name = str(backend).lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if name == "ray":
        require_ray()
    return name


def source_schema(source: TableSource, metadata: Any):
    """The public schema of a file source: header names + metadata; refuses what needs raw values."""
    from dpsynth.tabular.schema import resolve_schema

    names = source.column_names()
    schema = resolve_schema(pd.DataFrame(columns=list(names)), metadata)
    undeclared = [c.name for c in schema.columns if not c.declared]
    bounds = [c.name for c in schema.columns if c.needs_dp_bounds]
    cats = [c.name for c in schema.columns if c.needs_dp_categories]
    problems = []
    if undeclared:
        problems.append(f"no type for column(s) {', '.join(undeclared)}")
    if bounds:
        problems.append(f"no public bounds for {', '.join(bounds)}")
    if cats:
        problems.append(f"no public category list for {', '.join(cats)}")
    if problems:
        raise BackendError(
            "the stream and ray backends need complete public metadata for every column (type, and "
            "bounds or categories; the row count may be omitted and is then released with DP): "
            + "; ".join(problems)
            + ". Complete the metadata, or use the in-memory backend, which can release missing "
            "bounds and categories with DP."
        )
    return schema


def plan_source(backend: str, data: Any, metadata: Any) -> tuple[TableSource, Any]:
    """The file source and its public schema for ``backend`` (header line / Parquet schema only)."""
    backend = check_backend(backend)
    if backend == "memory":
        raise BackendError("the memory backend is Synthesizer.fit(df) itself; give a DataFrame to it")
    if isinstance(data, pd.DataFrame):
        raise BackendError(f"backend {backend!r} reads CSV/Parquet files: pass a path (file or directory)")
    source = TableSource.from_path(data)
    return source, source_schema(source, metadata)


def check_count_method(method_name: str, backend: str) -> None:
    """Refuse a method that reads rows (DP-SGD) on a counting backend (public: the method name)."""
    if method_name not in COUNT_METHODS:
        raise BackendError(
            f"method {method_name!r} trains on rows (DP-SGD) and runs in-process only; use backend "
            f"'memory' for it, or one of {', '.join(COUNT_METHODS)} with backend {backend!r}"
        )


def check_domain_plan(domain_plan: Any) -> None:
    """Only a DP row count can be left open on these backends (the rest is refused by source_schema)."""
    if set(domain_plan.parameters) - {"row_count", "epsilon", "delta", "shares"}:
        raise BackendError("internal: the stream and ray backends release only a DP row count in the domain stage")


def workload(method_name: str, method: Any, columns: tuple[str, ...], sizes: tuple[int, ...]) -> list[tuple[str, ...]]:
    """Cliques to count in the first pass (public: method name, options and domain only).

    A clique the method asks for later that is not here costs one more pass; the result is the
    same either way.
    """
    cols = list(columns)
    out = [(c,) for c in cols]
    if method_name in ("mst", "aim"):
        out += list(itertools.combinations(cols, 2))
    if method_name == "aim":
        size = dict(zip(columns, sizes))
        max_order = int(getattr(method, "max_order", 3))
        max_cells = int(getattr(method, "max_cells", 10_000))
        for k in range(3, max_order + 1):
            out += [cl for cl in itertools.combinations(cols, k) if math.prod(size[c] for c in cl) <= max_cells]
    return out


def private_counts(backend: str, source: TableSource, encoder, *, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                   ray_address: str | None = None, progress: bool = False):
    """The :class:`~dpsynth.tabular.private_table.PrivateCounts` of ``source`` on ``backend``."""
    if backend == "stream":
        return StreamingCounts(source, encoder, chunk_rows, progress=progress)
    if backend == "ray":
        return RayCounts(source, encoder, chunk_rows, address=ray_address, progress=progress)
    raise BackendError(f"unknown backend {backend!r}")


def fit_with_backend(synth: "Synthesizer", data: Any, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> "Synthesizer":
    """:meth:`Synthesizer.fit` on a file source through counts (see the module docstring).

    ``data``: the input path, or the :class:`~dpsynth.tabular.plan.FitPlan` that
    ``synth.plan(path)`` made of it.
    """
    from dpsynth.randomness import secret_numpy_rng
    from dpsynth.tabular import _accounting as acc
    from dpsynth.tabular import dp_domain
    from dpsynth.tabular.encoding import TableEncoder
    from dpsynth.tabular.methods.base import EncodedDomain
    from dpsynth.tabular.dp_domain import DomainRelease
    from dpsynth.tabular.infer import PRIVACY_UNIT
    from dpsynth.tabular.stages import SourceFingerprint, domain_stage, fit_method_stage
    from dpsynth.tabular.plan import FitPlan

    # ---- public inputs only (header line / Parquet schema, metadata, method, options) ---------
    fit_plan = data if isinstance(data, FitPlan) else synth.plan(data)
    if fit_plan.backend == "memory":
        raise BackendError("the memory backend is Synthesizer.fit(df) itself; give a DataFrame to it")
    backend, source, schema = fit_plan.backend, fit_plan.source, fit_plan.schema
    budget, method_name, method, domain_plan = fit_plan.budget, fit_plan.method_name, fit_plan.method, fit_plan.domain_plan
    (eps_d, delta_d), (eps_m, delta_m) = fit_plan.domain_budget, fit_plan.method_budget

    ledger = synth.ledger or acc.Ledger.create(budget, privacy_unit=PRIVACY_UNIT, source_name=synth.source_name)
    ledger.require_available(budget)
    encoder = TableEncoder.from_schema(schema)
    domain = EncodedDomain(encoder.columns, encoder.sizes)
    counts = private_counts(backend, source, encoder, chunk_rows=chunk_rows,
                            ray_address=getattr(synth, "ray_address", None), progress=synth.progress)
    # Nothing is read before the charge: the workload (public) is only planned; the first charged
    # stage's first count reads the data and counts the whole workload in that one pass. An
    # unreadable row fails that stage (generic message, charge kept), never a pre-charge check.
    counts.plan(workload(method_name, method, encoder.columns, encoder.sizes))
    # no refusal on the number of rows: whether a call is refused must not depend on the data
    noise_rng = secret_numpy_rng()  # privacy noise: OS entropy, drawn here in the driver only
    rng = np.random.default_rng(synth.seed)  # post-processing only
    fingerprint = SourceFingerprint(source.fingerprint)  # reads every byte: inside the first charged stage

    # ---- stage 1: the DP domain (only the row count can be open on these backends) ----------
    def release_row_count() -> DomainRelease:  # the only open part on these backends
        noisy_n = dp_domain.dp_row_count(counts.rows, domain_plan.parameters["row_count"]["sigma"], noise_rng)
        return DomainRelease(schema=schema, dp_row_count=noisy_n, report={})

    release, n_public = domain_stage(
        ledger, domain_plan, schema, release_row_count,
        acc.PrivacyBudget(eps_d, delta_d) if eps_d > 0 else None, fingerprint, schema.names,
    )
    assert n_public is not None

    # ---- stage 2: the method on counts ------------------------------------------------------
    plan, model = fit_method_stage(
        ledger, method, method_name, counts, domain, acc.PrivacyBudget(eps_m, delta_m), float(n_public),
        noise_rng, fingerprint, seeded=synth.seed is not None, progress=synth.progress,
    )

    synth._set_fitted(ledger, schema, method_name, plan, domain_plan, release, n_public, model, encoder, rng)
    synth.counts_ = counts
    return synth


# ------------------------------------------------------------------------------ streamed output
def sample_chunks(synth: "Synthesizer", n: int, chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """``n`` synthetic rows as DataFrames of at most ``chunk_rows`` rows (post-processing)."""
    assert synth.model_ is not None and synth.encoder_ is not None and synth._rng is not None
    yield from sample_frames(synth.model_, synth.encoder_, int(n), 0, chunk_rows, synth._rng)


def write_streamed(synth: "Synthesizer", path: str | Path, rows: int | None = None, *, force: bool = False,
                   chunk_rows: int = DEFAULT_CHUNK_ROWS):
    """Sample ``rows`` rows chunk by chunk into the single file ``path`` (.parquet or .csv) with
    ledger and card. :func:`dpsynth.tabular.output_parts.write_partitioned` writes a directory of
    part files instead (in parallel on Ray)."""
    from dpsynth.release import write_release

    if synth.model_ is None:
        raise RuntimeError("call fit() before write_streamed()")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise BackendError(f"streamed output is written as .parquet or .csv, not {suffix!r}")
    n = int(rows) if rows is not None else max(1, int(round(synth.n_public_ or 1)))
    if n < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    synth.ledger.record_postprocessing(
        operation="tabular.sample",
        description=f"{n} rows sampled from the fitted DP {synth.method_} model (post-processing, no privacy cost)",
        parameters={"rows": int(n), "method": synth.method_},
    )

    assert synth.schema_ is not None
    arrow_schema = output_arrow_schema(synth.schema_)

    def write(tmp: Path) -> None:
        write_part_file(tmp, sample_chunks(synth, n, chunk_rows), suffix.lstrip("."), arrow_schema)

    snapshot, card = release_card(synth, n)
    return write_release(path, write, snapshot, card, force=force)
