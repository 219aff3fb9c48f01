"""``dpsynth tabular ...`` commands.

``dpsynth tabular synth INPUT.csv -o OUTPUT.csv --epsilon E [--delta D] [--rows N] [--method M]
[--metadata META.json] [--seed S] [--force]`` writes OUTPUT.csv, OUTPUT.csv.ledger.json and
OUTPUT.csv.card.yaml.

The default delta is a public constant (1e-6), never derived from the row count. The quality
summary printed at the end compares the synthetic table with the private input: it is **not DP**,
is shown only on this console for the data owner, and is written nowhere.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="DP synthesis of CSV tables.", no_args_is_help=True)

DEFAULT_DELTA = 1e-6


def _read_csv(path: Path):
    import pandas as pd

    from dpsynth.cli.common import fail

    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        fail(f"{path} has no data (empty CSV)")
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        fail(f"cannot parse {path} as CSV: {str(exc).strip().splitlines()[0]}")
    if df.shape[1] == 0:
        fail(f"{path} has no columns")
    if len(df) == 0:
        fail(f"{path} has a header but no rows")
    if len(df) == 1:
        fail(f"{path} has a single row; there is nothing to synthesise privately from it")
    return df


@app.command()
def synth(
    ctx: typer.Context,
    input: Path = typer.Argument(..., help="Sensitive input table (CSV)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output path (.csv, .jsonl or .parquet)."),
    epsilon: float = typer.Option(..., "--epsilon", "-e", help="Privacy budget epsilon (> 0, finite)."),
    delta: float = typer.Option(DEFAULT_DELTA, "--delta", "-d", help="Privacy budget delta in (0, 1); public default 1e-6."),
    rows: Optional[int] = typer.Option(None, "--rows", "-n", help="Rows to generate (default: public or DP row count)."),
    method: str = typer.Option("auto", "--method", "-m", help="auto | aim | mst | independent | dpsgd_vae."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Public metadata (JSON or YAML)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling rows from the fitted DP model (post-processing); privacy noise always uses OS entropy."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fit a DP synthesizer on INPUT and write a synthetic table with its ledger and card."""
    from dpsynth.cli.common import console, fail, parse_budget, require_input_file
    from dpsynth.errors import DpsynthError
    from dpsynth.release import (OutputExistsError, ReleaseWriteError, check_rows_fit_memory,
                                 refuse_output_over_input, reserve_release)

    budget = parse_budget(epsilon, delta)
    if rows is not None and rows < 1:
        fail(f"--rows must be a positive integer, got {rows}")
    require_input_file(input)
    if metadata is not None and not metadata.exists():
        fail(f"metadata file {metadata} does not exist")
    if output.suffix.lower() not in (".csv", ".jsonl", ".parquet"):
        fail(f"unsupported output format {output.suffix!r}; use .csv, .jsonl or .parquet")
    try:  # the reservation is held until this command returns (typer closes ctx on every exit path)
        refuse_output_over_input(output, input, metadata)
        ctx.with_resource(reserve_release(output, force))
        with open(input, newline="", encoding="utf-8", errors="replace") as header:  # the header only: public
            check_rows_fit_memory(rows, len(next(csv.reader(header), [])), name="--rows")
    except (DpsynthError, OSError) as exc:
        fail(str(exc))

    df = _read_csv(input)

    from dpsynth.accounting import BudgetExceededError, InvalidBudgetError
    from dpsynth.tabular.methods import UnknownMethodError
    from dpsynth.tabular.plan import CategoryDiscoveryUnavailable
    from dpsynth.tabular.schema import IdentifierColumnError, MetadataError
    from dpsynth.tabular.synthesize import EmptyTableError, Synthesizer

    try:
        synth = Synthesizer(
            epsilon=budget.epsilon,
            delta=budget.delta,
            method=method,
            metadata=str(metadata) if metadata is not None else None,
            seed=seed,
            progress=not quiet,
            source_name=input.name,
        )
        console.print(f"Fitting on {input.name} with epsilon={budget.epsilon:g}, delta={budget.delta:g} ...")
        synth.fit(df)
        result = synth.sample(rows)
        paths = result.save(output, force=force)
    except (
        MetadataError,
        IdentifierColumnError,
        CategoryDiscoveryUnavailable,
        EmptyTableError,
        UnknownMethodError,
        InvalidBudgetError,
        BudgetExceededError,
        OutputExistsError,
        ReleaseWriteError,
    ) as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"bad input: {exc}")

    ledger = result.ledger
    console.print(f"Wrote {paths.data} ({len(result.data)} rows, method {result.method})")
    console.print(f"  ledger: {paths.ledger}")
    console.print(f"  card:   {paths.card}")
    console.print(
        f"Privacy spent: epsilon={ledger.epsilon_spent:.4f}, delta={ledger.delta_spent:.3g} "
        f"(budget epsilon={budget.epsilon:g}, delta={budget.delta:g}; privacy unit: one row)"
    )
    for entry in ledger.charges():
        console.print(f"  - {entry['operation']}: epsilon={entry['charge']['epsilon']:.4f} ({entry['charge']['accountant']})")
    from dpsynth.tabular.quality import tvd_summary

    assert synth.encoder_ is not None
    summary = tvd_summary(df, result.data, synth.encoder_, orders=(1, 2), max_marginals=200)
    parts = ", ".join(f"{k.replace('tvd_', '')} TVD {v:.3f}" for k, v in summary.items() if not math.isnan(v))
    console.print(
        f"Quality vs. your input (average total-variation distance, lower is better): {parts}. "
        "[dim]Not DP: computed from the private input for you only; not stored.[/dim]"
    )
