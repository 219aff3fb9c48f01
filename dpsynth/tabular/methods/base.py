"""The interface every tabular synthesis method implements.

A method works on a *public, finite, encoded domain*: every column of the private table has been
mapped (by :mod:`dpsynth.tabular.encoding`) to integer codes ``0..sizes[i]-1`` using only public
metadata or DP-released domain information.  A method then

1. ``calibrate(epsilon, delta, domain, n_public)`` -- from public inputs only, fixes all of its
   noise parameters and describes the whole fit as one dp-accounting ``DpEvent`` under the
   add-or-remove-one-row neighbouring relation (the privacy unit is one row of the table);
2. ``fit(codes, plan, rng)`` -- reads the private codes and returns a fitted model whose
   ``sample`` is post-processing (it never touches private data again).

``n_public`` is a public (metadata-given or DP-released) estimate of the row count. Methods may
use it for public constants (e.g. DP-SGD's sampling rate and normaliser), never ``len(codes)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from dp_accounting.dp_event import DpEvent


@dataclass(frozen=True)
class EncodedDomain:
    """The public, finite domain every method works on: column i takes codes 0..sizes[i]-1."""

    columns: tuple[str, ...]
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.sizes):
            raise ValueError("EncodedDomain: columns and sizes must have the same length")
        if any(int(s) < 1 for s in self.sizes):
            raise ValueError("EncodedDomain: every column needs at least one code")


@dataclass(frozen=True)
class MethodPlan:
    """A method's calibrated, public plan, fixed before any private record is read."""

    method: str
    event: DpEvent  # the whole method's dp-accounting event, add/remove-one row
    delta: float  # the delta this plan was calibrated for
    parameters: dict  # public JSON-serialisable parameters (noise multipliers, rho, steps...)
    sampling: str  # "none" | "poisson"

    # the PrivatePlan protocol of dpsynth.accounting.ledger (what ledger.spend charges)
    @property
    def mechanism(self) -> str:
        return self.method

    @property
    def stages(self) -> tuple:
        return ()


@runtime_checkable
class FittedTabularModel(Protocol):
    """A fitted DP model; sampling from it is post-processing."""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``n`` synthetic rows as int codes, shape ``(n, d)``."""
        ...


@runtime_checkable
class TabularMethod(Protocol):
    """A DP synthesis method over an :class:`EncodedDomain`."""

    name: str

    def calibrate(
        self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float
    ) -> MethodPlan:
        """Fix every noise parameter from public inputs; return the method's plan and event."""
        ...

    def fit(
        self,
        codes: np.ndarray,
        plan: MethodPlan,
        rng: np.random.Generator,
        progress: bool = True,
    ) -> FittedTabularModel:
        """Fit on private int codes of shape ``(n, d)`` following ``plan``."""
        ...
