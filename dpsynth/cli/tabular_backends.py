"""``dpsynth tabular synth ... --backend stream|ray``: files in, rows streamed to disk.

The input is a CSV / Parquet file or a directory of part files; the private table is read only
through exact counts (:mod:`dpsynth.tabular.private_table`), noise is drawn once in this process,
and the synthetic rows are sampled and written chunk by chunk (post-processing) next to their
ledger and card. Unlike the in-memory path no quality summary against the input is printed: it
would need the private table in memory.
"""

from __future__ import annotations

from pathlib import Path

from dpsynth.accounting import PrivacyBudget


def synth_with_backend(
    *,
    input: Path,
    output: Path,
    budget: PrivacyBudget,
    rows: int | None,
    method: str,
    metadata: Path | None,
    seed: int | None,
    force: bool,
    quiet: bool,
    backend: str,
    ray_address: str | None,
) -> None:
    """Run one release on ``backend``; exits with a clear message on bad input (nothing spent)."""
    from dpsynth.accounting import BudgetExceededError, InvalidBudgetError
    from dpsynth.cli.common import console, fail
    from dpsynth.errors import DpsynthError
    from dpsynth.release import OutputExistsError, check_release_writable
    from dpsynth.tabular.backends import check_backend, write_streamed
    from dpsynth.tabular.methods import UnknownMethodError
    from dpsynth.tabular.schema import MetadataError
    from dpsynth.tabular.synthesize import EmptyTableError, Synthesizer

    try:
        backend = check_backend(backend)
    except (DpsynthError, ImportError) as exc:
        fail(str(exc))
    if backend == "memory":
        fail("internal: the memory backend is the default path")
    started_ray = False
    if backend == "ray":
        import ray

        started_ray = not ray.is_initialized()  # shut down only a connection this command made
    if ray_address is not None and backend != "ray":
        fail("--ray-address is only used with --backend ray")
    if not input.exists():
        fail(f"input {input} does not exist")
    if metadata is None:
        fail(f"--backend {backend} needs --metadata with every column's type and bounds or categories "
             "(the row count may be omitted)")
    if not metadata.exists():
        fail(f"metadata file {metadata} does not exist")
    if output.suffix.lower() not in (".csv", ".parquet"):
        fail(f"--backend {backend} writes .parquet or .csv output, not {output.suffix!r}")
    try:
        check_release_writable(output, force)
    except (OutputExistsError, FileNotFoundError) as exc:
        fail(str(exc))

    synth = Synthesizer(
        epsilon=budget.epsilon, delta=budget.delta, method=method, metadata=str(metadata), seed=seed,
        progress=not quiet, source_name=input.name, backend=backend, ray_address=ray_address,
    )
    console.print(f"Fitting on {input} ({backend} backend) with epsilon={budget.epsilon:g}, delta={budget.delta:g} ...")
    try:
        synth.fit(input)
        paths = write_streamed(synth, output, rows, force=force)
    except (MetadataError, EmptyTableError, UnknownMethodError, InvalidBudgetError, BudgetExceededError,
            OutputExistsError, DpsynthError) as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"bad input: {exc}")
    finally:
        if started_ray:
            import ray

            if ray.is_initialized():
                ray.shutdown()

    ledger = synth.ledger
    n = int(rows) if rows is not None else max(1, int(round(synth.n_public_ or 1)))
    console.print(f"Wrote {paths.data} ({n} rows, method {synth.method_}, streamed)")
    console.print(f"  ledger: {paths.ledger}")
    console.print(f"  card:   {paths.card}")
    console.print(
        f"Privacy spent: epsilon={ledger.epsilon_spent:.4f}, delta={ledger.delta_spent:.3g} "
        f"(budget epsilon={budget.epsilon:g}, delta={budget.delta:g}; privacy unit: one row)"
    )
    for entry in ledger.charges():
        console.print(f"  - {entry['operation']}: epsilon={entry['charge']['epsilon']:.4f} ({entry['charge']['accountant']})")
