"""Registry of tabular synthesis methods (see :mod:`dpsynth.tabular.methods.base`)."""

from __future__ import annotations

from dpsynth.tabular.methods.base import (
    EncodedDomain,
    FittedTabularModel,
    MethodPlan,
    TabularMethod,
)

__all__ = ["EncodedDomain", "FittedTabularModel", "MethodPlan", "TabularMethod"]
