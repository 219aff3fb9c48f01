"""Registry of tabular synthesis methods (see :mod:`dpsynth.tabular.methods.base`).

Methods are looked up by name and imported lazily, so a method whose module (or whose optional
dependencies) is missing only fails when it is asked for, with a clear message.

``auto`` is a public rule on the number of encoded columns (never on private data):
AIM for up to ``AUTO_AIM_MAX_COLUMNS`` columns, MST above. AIM adapts its measurements to the
all-3-way workload and is the state of the art at epsilon ~ 1 on Adult-like tables, but its
select-measure-refit loop grows with the number of candidate marginals (cubic in the column
count); MST's fixed tree of 2-way marginals stays fast on wide tables (tabular.md §1, §8).
"""

from __future__ import annotations

import importlib
from typing import Any

from dpsynth.tabular.methods.base import (
    EncodedDomain,
    FittedTabularModel,
    MethodPlan,
    TabularMethod,
)

#: name -> "module:Class"
METHODS: dict[str, str] = {
    "aim": "dpsynth.tabular.methods.aim:AIMMethod",
    "mst": "dpsynth.tabular.methods.mst:MSTMethod",
    "independent": "dpsynth.tabular.methods.independent:IndependentMethod",
    "dpsgd_vae": "dpsynth.tabular.methods.dpsgd_vae:DPSGDVAEMethod",
    # experimental: privacy-tested like the VAE, but its utility is unstable; never chosen by auto
    "dpsgd_gan": "dpsynth.tabular.methods.dpsgd_gan:DPSGDGANMethod",
}
AUTO_AIM_MAX_COLUMNS = 16


class UnknownMethodError(ValueError):
    """No method of that name, or its module is not available."""


def available_methods() -> list[str]:
    """Registered names (a name may still fail to load if its module is missing)."""
    return sorted(METHODS) + ["auto"]


def resolve_method_name(name: str, n_columns: int) -> str:
    """The concrete method for ``name``; ``auto`` applies the public column-count rule."""
    name = str(name).lower()
    if name == "auto":
        return "aim" if n_columns <= AUTO_AIM_MAX_COLUMNS else "mst"
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; choose from {', '.join(available_methods())}")
    return name


def get_method(name: str, **options: Any) -> TabularMethod:
    """An instance of the method ``name`` (not ``auto``), built with ``options``."""
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; choose from {', '.join(available_methods())}")
    module_name, cls_name = METHODS[name].split(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, cls_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownMethodError(f"method {name!r} is not available in this installation: {exc}") from exc
    try:
        return cls(**options)
    except TypeError as exc:
        raise UnknownMethodError(f"bad options for method {name!r}: {exc}") from exc


__all__ = [
    "AUTO_AIM_MAX_COLUMNS",
    "EncodedDomain",
    "FittedTabularModel",
    "METHODS",
    "MethodPlan",
    "TabularMethod",
    "UnknownMethodError",
    "available_methods",
    "get_method",
    "resolve_method_name",
]
