"""``dpsynth tabular synth ... --backend stream|ray``: files in, rows streamed to disk.

The input is a CSV / Parquet file or a directory of part files; the private table is read only
through exact counts (:mod:`dpsynth.tabular.private_table`), noise is drawn once in this process,
and the synthetic rows are sampled and written chunk by chunk (post-processing) next to their
ledger and card -- as one file, or with ``--partitioned`` (always with ``--backend ray``) as a
directory of part files (:mod:`dpsynth.tabular.output_parts`). Unlike the in-memory path no quality summary against the input is printed: it
would need the private table in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dpsynth.accounting import PrivacyBudget


def synth_with_backend(
    ctx: Any,
    *,
    input: Path,
    output: Path,
    epsilon: float,
    delta: float,
    rows: int | None,
    method: str,
    metadata: Path | None,
    seed: int | None,
    force: bool,
    quiet: bool,
    backend: str,
    ray_address: str | None,
    ledger_file: Path | None = None,
    no_source_budget: bool = False,
    partitioned: bool = False,
    part_rows: int | None = None,
    unsupported: dict[str, Any] | None = None,
) -> None:
    """Run one release on ``backend``; exits with a clear message on bad input (nothing spent)."""
    from dpsynth.accounting import BudgetExceededError, InvalidBudgetError
    from dpsynth.cli.common import console, fail, reserve_output
    from dpsynth.errors import DpsynthError
    from dpsynth.release import OutputExistsError
    from dpsynth.tabular.backends import check_backend, write_streamed
    from dpsynth.tabular.output_parts import write_partitioned
    from dpsynth.tabular.methods import UnknownMethodError
    from dpsynth.tabular.schema import MetadataError
    from dpsynth.tabular.synthesize import EmptyTableError, Synthesizer

    from dpsynth.cli.common import parse_budget

    budget: PrivacyBudget = parse_budget(epsilon, delta)
    if rows is not None and rows < 1:
        fail(f"--rows must be a positive integer, got {rows}")
    given = [flag for flag, value in (unsupported or {}).items() if value is not None]
    if given:
        fail(f"{', '.join(given)} cannot be used with --backend {backend} (in-memory backend only)")
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
        if started_ray:  # plan() connects before the charge; a refusal after it must not leave Ray running
            ctx.call_on_close(lambda: ray.shutdown() if ray.is_initialized() else None)
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
    partitioned = partitioned or backend == "ray"  # Ray samples its parts in parallel: always a directory
    if part_rows is not None and (part_rows < 1 or not partitioned):
        fail("--part-rows must be a positive integer" if part_rows < 1 else
             "--part-rows is for a partitioned output (--partitioned, or --backend ray)")
    if input.is_dir() and output.resolve().is_relative_to(input.resolve()):
        fail(f"refusing to write {output} inside the input directory {input}: a later run would read it as input; "
             "choose an output outside it")
    if output.is_dir() and input.resolve().is_relative_to(output.resolve()):
        fail(f"refusing to write {output}: the input {input} is inside it (dpsynth never overwrites an input, "
             "even with --force); choose another output path")
    reserve_output(ctx, output, input, metadata, force=force)
    from dpsynth.cli.budget import source_budget_charge
    from dpsynth.tabular.synthesize import PRIVACY_UNIT

    synth = Synthesizer(
        epsilon=budget.epsilon, delta=budget.delta, method=method, metadata=str(metadata), seed=seed,
        progress=not quiet, source_name=input.name, backend=backend, ray_address=ray_address,
    )
    try:  # the library's plan step (header line / Parquet schema, metadata completeness, method): nothing spent
        synth.plan(input)
    except (DpsynthError, ValueError) as exc:
        fail(str(exc))

    source_step = ctx.with_resource(source_budget_charge(  # the input path's source budget, before any read
        input, budget=budget, release=output, ledger=ledger_file, no_source_budget=no_source_budget,
        privacy_unit=PRIVACY_UNIT))

    console.print(f"Fitting on {input} ({backend} backend) with epsilon={budget.epsilon:g}, delta={budget.delta:g} ...")
    try:
        synth.fit(input)
        if partitioned:
            paths = write_partitioned(synth, output, rows, force=force,
                                      **({"part_rows": part_rows} if part_rows is not None else {}))
        else:
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

    from dpsynth.accounting import Ledger

    ledger = synth.ledger if isinstance(synth.ledger, Ledger) else synth.ledger.load()
    if source_step is not None:
        source_step.outputs = {"release": str(paths.data), "release_ledger_id": ledger.ledger_id}
    n = int(rows) if rows is not None else max(1, int(round(synth.n_public_ or 1)))
    if partitioned:
        console.print(f"Wrote {paths.data}/ ({n} rows in part files, method {synth.method_}, "
                      f"sampled {'on Ray' if backend == 'ray' else 'in this process'})", highlight=False)
    else:
        console.print(f"Wrote {paths.data} ({n} rows, method {synth.method_}, streamed)", highlight=False)
    console.print(f"  ledger: {paths.ledger}")
    console.print(f"  card:   {paths.card}")
    console.print(
        f"Privacy spent: epsilon={ledger.epsilon_spent:.4f}, delta={ledger.delta_spent:.3g} "
        f"(budget epsilon={budget.epsilon:g}, delta={budget.delta:g}; privacy unit: one row)"
    )
    for entry in ledger.charges():
        console.print(f"  - {entry['operation']}: epsilon={entry['charge']['epsilon']:.4f} ({entry['charge']['accountant']})")
