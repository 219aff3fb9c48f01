"""``dpsynth budget init | show`` -- one budget per data source, across releases.

See :mod:`dpsynth.accounting.source_budget` for the rule. The synth commands call
:func:`source_budget_charge` before they read their input.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.markup import escape
from rich.table import Table

from dpsynth.accounting.budget import BudgetExceededError, PrivacyBudget
from dpsynth.accounting.ledger import SpendStep
from dpsynth.accounting.ledger_file import LedgerFile
from dpsynth.accounting.serialization import LedgerFormatError
from dpsynth.accounting.source_budget import (
    CallBudgetPlan,
    SourceBudgetError,
    find_source_budget,
    init_source_budget,
    list_source_budgets,
    source_ledger_path,
)
from dpsynth.cli.common import EXIT_VERIFY_FAILED, console, fail, parse_budget
from dpsynth.release import same_file

app = typer.Typer(help="One privacy budget per data source, drawn on by every release.", no_args_is_help=True)

#: Setting this environment variable to ``off`` has the effect of ``--no-source-budget`` on every run.
NO_SOURCE_BUDGET_ENV = "DPSYNTH_SOURCE_BUDGET"
TEXT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".txt")
#: files whose records are rows (tables, and text corpora kept as one text per CSV row)
ROW_SUFFIXES = (".csv",)


def default_unit(source: Path) -> str:
    """The privacy unit a source budget is kept in, from the file's extension (a public rule)."""
    from dpsynth.tabular.synthesize import PRIVACY_UNIT as ROW
    from dpsynth.text.privacy import PRIVACY_UNIT as TEXT

    return TEXT if source.suffix.lower() in TEXT_SUFFIXES else ROW


def accepted_units(source: Path, privacy_unit: str) -> tuple[str, ...]:
    """The budget ledger units a run protecting ``privacy_unit`` on ``source`` may charge.

    One record of a CSV file is one row, whichever command reads it: a text run on a CSV (one text
    and its label per row) protects exactly one row, so it draws on the same budget as a table run
    on that file (the row unit) -- one budget for the file, not one per command."""
    from dpsynth.tabular.synthesize import PRIVACY_UNIT as ROW

    if source.suffix.lower() in ROW_SUFFIXES and privacy_unit != ROW:
        return (privacy_unit, ROW)
    return (privacy_unit,)


@app.command()
def init(
    source: Path = typer.Argument(..., help="The private data file (CSV, Parquet, JSONL ...)."),
    epsilon: float = typer.Option(..., "--epsilon", "-e", help="Total epsilon every release from SOURCE together may spend."),
    delta: float = typer.Option(..., "--delta", "-d", help="Total delta, strictly between 0 and 1."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success."),
) -> None:
    """Create SOURCE's budget ledger (signed, in your dpsynth home). Budgets are never reset."""
    budget = parse_budget(epsilon, delta)
    if not source.exists():
        fail(f"source {source} does not exist")
    try:
        handle = init_source_budget(source, budget, privacy_unit=default_unit(source))
    except SourceBudgetError as exc:
        fail(str(exc))
    if not quiet:
        console.print(f"Budget for {source}: epsilon={budget.epsilon:g}, delta={budget.delta:g} (ledger {handle.path})",
                      highlight=False)


@app.command()
def show(
    source: Optional[Path] = typer.Argument(None, help="Only this source (default: every source)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List sources with their budget, spend, remaining budget and every release drawn from each."""
    try:
        rows = list_source_budgets()
    except LedgerFormatError as exc:
        fail(f"a source budget ledger does not verify: {exc}", EXIT_VERIFY_FAILED)
    if source is not None:
        wanted = str(source_ledger_path(source))
        rows = [r for r in rows if r["ledger"] == wanted]
        if not rows:
            fail(f"{source} has no budget; create one with: dpsynth budget init {source} --epsilon E --delta D")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        if any(row.get("error") for row in rows):
            raise typer.Exit(EXIT_VERIFY_FAILED)
        return
    if not rows:
        console.print("No source budgets yet (dpsynth budget init SOURCE --epsilon E --delta D).")
    bad = [row for row in rows if row.get("error")]
    for row in rows:
        if row.get("error"):
            console.print(f"[bold red]{escape(str(row['source'] or row['ledger']))}[/]: {escape(row['error'])}",
                          highlight=False)
            if row["source"] is None:
                continue
        console.print(
            f"[bold]{row['source']}[/]: spent epsilon={row['epsilon_spent']:.6g} of {row['epsilon_budget']:g}, "
            f"delta={row['delta_spent']:.3g} of {row['delta_budget']:.3g}; remaining epsilon={row['epsilon_remaining']:.6g}",
            highlight=False,
        )
        table = Table("release", "epsilon", "delta", "status", "time")
        for rel in row["releases"]:
            table.add_row(str(rel["release"]), f"{rel['epsilon']:.6g}", f"{rel['delta']:.3g}", rel["status"], rel["time"])
        console.print(table)
    if bad:
        raise typer.Exit(EXIT_VERIFY_FAILED)


@contextmanager
def source_budget_charge(
    source: Path,
    *,
    budget: PrivacyBudget,
    release: Path,
    ledger: Optional[Path],
    no_source_budget: bool,
    privacy_unit: str,
) -> Iterator[SpendStep | None]:
    """Charge the run's whole budget to SOURCE's budget ledger (or ``--ledger``) before the input is read.

    Refuses (exit 2, nothing read) without a source budget unless ``--no-source-budget`` (or
    ``DPSYNTH_SOURCE_BUDGET=off``), and when the charge would overspend. The block's end is recorded
    as the charge's completion (``failed`` if it raised; the charge stays).
    """
    if no_source_budget or os.environ.get(NO_SOURCE_BUDGET_ENV, "").lower() == "off":
        yield None
        return
    own = find_source_budget(source)
    if ledger is not None and own is not None and not same_file(Path(ledger), own.path):
        fail(
            f"{source} has its own source budget ({own.path}); --ledger may name only that ledger: a run on "
            "a source is always charged to the source's budget"
        )
    handle = LedgerFile(ledger) if ledger is not None else own
    if handle is None:
        fail(
            f"{source} has no source budget. Create one that every release from it draws on:\n"
            f"  dpsynth budget init {source} --epsilon E --delta D\n"
            "or pass --ledger PATH (a budget ledger file), or --no-source-budget (each call then starts a fresh "
            "budget, and nothing limits the total over several calls)"
        )
    if not handle.path.exists():
        fail(f"ledger {handle.path} does not exist (create it with dpsynth budget init)")
    try:
        snapshot = handle.load()
    except (LedgerFormatError, OSError) as exc:
        fail(f"the source budget ledger {handle.path} does not verify: {exc}", EXIT_VERIFY_FAILED)
    if ledger is None and snapshot.source_name != str(source.expanduser().resolve()):
        fail(
            f"the budget ledger {handle.path} is {snapshot.source_name}'s, not {source}'s (a budget file put in "
            "place of another): refusing to spend from it",
            EXIT_VERIFY_FAILED,
        )
    unit = snapshot.privacy_unit
    if unit not in accepted_units(source, privacy_unit):
        fail(f"the budget ledger {handle.path} counts privacy unit {unit!r}, this run protects {privacy_unit!r}")
    owner = source if ledger is None else f"{snapshot.source_name} (ledger {handle.path})"
    plan = CallBudgetPlan(budget.epsilon, budget.delta, release=str(release))
    with ExitStack() as stack:
        try:
            step = stack.enter_context(handle.spend(plan, operation="release"))
        except BudgetExceededError as exc:
            fail(f"source budget of {owner}: {exc}")
        except (LedgerFormatError, OSError) as exc:
            fail(f"the source budget ledger {handle.path} does not verify: {exc}", EXIT_VERIFY_FAILED)
        console.print(
            f"Charged epsilon={budget.epsilon:g}, delta={budget.delta:g} to the budget of {owner} "
            f"(remaining epsilon={handle.remaining[0]:.6g})",
            highlight=False,
        )
        try:
            yield step
        finally:
            step.failed = not step.outputs
