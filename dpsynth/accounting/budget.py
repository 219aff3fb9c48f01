"""Privacy budgets and the errors raised when one is invalid or would be exceeded."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from dpsynth.errors import DpsynthError


class InvalidBudgetError(DpsynthError, ValueError):
    """A privacy budget argument is malformed (zero, negative, NaN, infinite, delta out of range)."""


class BudgetExceededError(DpsynthError, RuntimeError):
    """A call's charge does not fit the budget. Raised before any private record is read.

    Attributes:
        requested: ``(epsilon, delta)`` the call would charge.
        remaining: ``(epsilon, delta)`` still available.
    """

    def __init__(self, message: str, requested: tuple[float, float], remaining: tuple[float, float]):
        super().__init__(message)
        self.requested = requested
        self.remaining = remaining


@dataclass(frozen=True)
class PrivacyBudget:
    """An (epsilon, delta) differential-privacy budget.

    ``epsilon`` must be a finite number > 0 and ``delta`` a number in [0, 1). Mechanisms that need
    ``delta > 0`` (Gaussian noise, zCDP conversions) refuse ``delta == 0`` themselves.
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        eps, delta = self.epsilon, self.delta
        if isinstance(eps, bool) or not isinstance(eps, Real):
            raise InvalidBudgetError(f"epsilon must be a number, got {eps!r}")
        if isinstance(delta, bool) or not isinstance(delta, Real):
            raise InvalidBudgetError(f"delta must be a number, got {delta!r}")
        if math.isnan(eps) or math.isinf(eps) or eps <= 0:
            raise InvalidBudgetError(f"epsilon must be a finite number > 0, got {eps!r}")
        if math.isnan(delta) or not 0 <= delta < 1:
            raise InvalidBudgetError(f"delta must be in [0, 1), got {delta!r}")
        object.__setattr__(self, "epsilon", float(eps))
        object.__setattr__(self, "delta", float(delta))

    def as_dict(self) -> dict[str, float]:
        return {"epsilon": self.epsilon, "delta": self.delta}
