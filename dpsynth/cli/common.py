"""Helpers shared by the CLI commands: budget parsing, error exits, the console."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from dpsynth.accounting import InvalidBudgetError, PrivacyBudget

console = Console()
err_console = Console(stderr=True)

#: Exit code for bad input / refused operations (Typer's own usage errors also use 2).
EXIT_BAD_INPUT = 2
#: Exit code when a ledger fails verification.
EXIT_VERIFY_FAILED = 1


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``Error: message`` to stderr and exit with ``code``.

    ``message`` is plain text: it is escaped, so brackets in it (``dpsynth[ray]``, a path, a list)
    are printed as they are and never read as console markup.
    """
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_budget(epsilon: float, delta: float | None, *, require_delta_positive: bool = True) -> PrivacyBudget:
    """A validated budget from CLI flags, exiting with a clear message when it is invalid.

    On the command line delta must lie strictly inside (0, 1).
    """
    if delta is None:
        fail("--delta is required")
    if require_delta_positive and (math.isnan(delta) or not 0 < delta < 1):
        fail(f"--delta must be strictly between 0 and 1, got {delta}")
    try:
        return PrivacyBudget(epsilon, delta)
    except InvalidBudgetError as exc:
        fail(f"invalid privacy budget: {exc}")


def require_input_file(path: Path) -> Path:
    """Exit with a clear message when ``path`` is missing, a directory, or empty."""
    if not path.exists():
        fail(f"input file {path} does not exist")
    if path.is_dir():
        fail(f"input {path} is a directory, not a file")
    if path.stat().st_size == 0:
        fail(f"input file {path} is empty")
    return path


#: Above this epsilon the CLI warns that the guarantee is weak.
LARGE_EPSILON = 10.0


def warn_large_epsilon(epsilon: float) -> None:
    """One console line when ``epsilon`` is above :data:`LARGE_EPSILON`."""
    if epsilon > LARGE_EPSILON:
        err_console.print(
            f"[yellow]Warning:[/] epsilon={epsilon:g} is a weak guarantee: an observer's odds of telling whether "
            f"any one record was in the input may grow by a factor up to e^{epsilon:g} (~{math.exp(min(epsilon, 700)):.3g}). "
            "Values of 1-10 are usual; use more only if you know why.",
            highlight=False,
            soft_wrap=True,
        )


def print_warnings(caught: list, quiet: bool, skip: tuple[type, ...] = ()) -> None:
    """Print recorded warnings once per warning site (class, file, line) as clean lines, with a
    repeat count; nothing when ``quiet``."""
    if quiet:
        return
    groups: dict[tuple, list] = {}
    for w in caught:
        if skip and issubclass(w.category, skip):
            continue
        groups.setdefault((w.category, w.filename, w.lineno), []).append(w)
    for items in groups.values():
        more = f" (and {len(items) - 1} similar)" if len(items) > 1 else ""
        err_console.print(f"[yellow]Warning:[/] {items[0].message}{more}", highlight=False, soft_wrap=True)


def reserve_output(ctx: typer.Context, output: Path, *inputs: Path | None, force: bool) -> None:
    """Refuse an ``output`` that would overwrite one of ``inputs``, then reserve it until the
    command returns (typer closes ``ctx`` on every exit path); exits with a clear message when
    refused. Public inputs only: nothing is read from the input files."""
    from dpsynth.errors import DpsynthError
    from dpsynth.release import refuse_output_over_input, reserve_release

    try:
        refuse_output_over_input(output, *inputs)
        ctx.with_resource(reserve_release(output, force))
    except (DpsynthError, OSError) as exc:
        fail(str(exc))
