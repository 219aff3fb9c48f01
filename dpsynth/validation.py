"""Checks of public arguments, shared by every package (one positive-number checker)."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


def positive_float(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite real number > 0 (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer >= 1 (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
