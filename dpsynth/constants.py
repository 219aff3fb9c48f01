"""Public constants shared by every package (never derived from data)."""

from __future__ import annotations

#: Default delta of a call: a public constant, never derived from the row or text count.
DEFAULT_DELTA = 1e-6
