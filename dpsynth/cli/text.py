"""``dpsynth text ...`` commands (filled in by the text work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="DP synthetic text by private LLM inference.", no_args_is_help=True)
