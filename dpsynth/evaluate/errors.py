"""The evaluation's deliberate errors (all :class:`dpsynth.errors.DpsynthError`, all ``ValueError``).

Evaluation runs after the release, on data the caller holds; its messages may name files, fields
and columns the caller gave. They never feed a ledger or a card.
"""

from __future__ import annotations

from dpsynth.errors import DpsynthError


class EvaluationError(DpsynthError, ValueError):
    """Base of every error ``dpsynth.evaluate`` raises on purpose."""


class EvaluationInputError(EvaluationError):
    """A file or argument given to the evaluation cannot be used (missing, empty, malformed,
    wrong field, mismatched columns or kinds)."""


__all__ = ["EvaluationError", "EvaluationInputError"]
