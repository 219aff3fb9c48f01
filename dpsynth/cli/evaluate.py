"""``dpsynth evaluate`` and ``dpsynth mix`` (filled in by the validation work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the top-level ``evaluate`` and ``mix`` commands to ``app``."""
