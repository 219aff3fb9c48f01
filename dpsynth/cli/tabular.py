"""``dpsynth tabular ...`` commands (filled in by the tabular work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="DP synthesis of CSV tables.", no_args_is_help=True)
