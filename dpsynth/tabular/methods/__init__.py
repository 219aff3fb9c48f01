"""Registry of tabular synthesis methods (see :mod:`dpsynth.tabular.methods.base`).

Methods are looked up by name and imported lazily, so a method whose module (or whose optional
dependencies) is missing only fails when it is asked for, with a clear message.

``auto`` is a public rule on the number of columns and (when known) the encoded domain sizes --
never on private data (:func:`auto_method`):

* **AIM** for up to ``AUTO_AIM_MAX_COLUMNS`` columns whose all-3-way candidate set (marginals of
  at most AIM's ``max_cells`` cells) is small enough: AIM adapts
  its measurements to the workload and is the state of the art at epsilon ~ 1 on Adult-like
  tables, but each round scores every candidate (the cap is on their total cells,
  ``AUTO_AIM_MAX_CANDIDATE_CELLS``);
* **MST** up to ``AUTO_MST_MAX_COLUMNS`` columns: its cost is one exact 2-way marginal per column
  pair (d(d-1)/2) plus d - 1 selections, and its model is a tree (memory linear in d);
* **independent** above that: d noisy 1-way marginals, linear in the column count, so ``auto``
  finishes on any table that loads. An explicit ``mst`` above ``MST_MAX_COLUMNS`` columns is
  refused up front (:class:`MethodTooLargeError`, with the number of pair marginals it would
  need), before any budget is spent.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from dpsynth.errors import DpsynthError

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
AUTO_AIM_MAX_CANDIDATE_CELLS = 2_000_000  # Adult (15 columns): 575 candidates, 586,165 cells
AUTO_AIM_MAX_CELLS = 10_000  # AIM's default max_cells
AUTO_MST_MAX_COLUMNS = 300  # 44,850 column pairs
MST_MAX_COLUMNS = 1000  # 499,500 column pairs: refused above this


class UnknownMethodError(DpsynthError, ValueError):
    """No method of that name, or its module is not available."""


class MethodTooLargeError(DpsynthError, ValueError):
    """The method would not finish in reasonable time / memory on this (public) table shape."""


def aim_candidate_cells(sizes: Sequence[int], max_cells: int = AUTO_AIM_MAX_CELLS, max_order: int = 3) -> int:
    """Total cells of AIM's candidates (the <= max_order-way marginals within max_cells): what each
    round scores, and the exact counts AIM computes once."""
    import itertools

    d = len(sizes)
    cells = 0
    for k in range(1, min(max_order, d) + 1):
        for cl in itertools.combinations(sizes, k):
            size = math.prod(int(s) for s in cl)
            if size <= max_cells:
                cells += size
    return cells


def auto_method(n_columns: int, sizes: Sequence[int] | None = None) -> str:
    """The public ``auto`` rule: a function of the column count and domain sizes only."""
    n_columns = int(n_columns)
    if n_columns <= AUTO_AIM_MAX_COLUMNS and (
        sizes is None or aim_candidate_cells(sizes) <= AUTO_AIM_MAX_CANDIDATE_CELLS
    ):
        return "aim"
    if n_columns <= AUTO_MST_MAX_COLUMNS:
        return "mst"
    return "independent"


def check_method_size(name: str, n_columns: int) -> None:
    """Refuse up front (before any budget is spent) a method that cannot finish on this many columns."""
    if name == "mst" and n_columns > MST_MAX_COLUMNS:
        pairs = n_columns * (n_columns - 1) // 2
        raise MethodTooLargeError(
            f"method 'mst' on {n_columns} columns needs {pairs:,} exact pair marginals and {n_columns - 1:,} "
            f"selections over them (about {pairs / 44_850:.0f}x the work of a 300-column table); the limit is "
            f"{MST_MAX_COLUMNS} columns. Use method='independent' or 'auto', or model fewer columns."
        )


def available_methods() -> list[str]:
    """Registered names (a name may still fail to load if its module is missing)."""
    return sorted(METHODS) + ["auto"]


def resolve_method_name(name: str, n_columns: int, sizes: Sequence[int] | None = None) -> str:
    """The concrete method for ``name``; ``auto`` applies the public rule :func:`auto_method`.

    Raises :class:`UnknownMethodError` for an unknown name and :class:`MethodTooLargeError` for a
    method that cannot finish on ``n_columns`` columns (both before any budget is spent).
    """
    name = str(name).lower()
    if name == "auto":
        return auto_method(n_columns, sizes)
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; choose from {', '.join(available_methods())}")
    check_method_size(name, int(n_columns))
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
    "AUTO_AIM_MAX_CANDIDATE_CELLS",
    "AUTO_AIM_MAX_COLUMNS",
    "AUTO_MST_MAX_COLUMNS",
    "MST_MAX_COLUMNS",
    "MethodTooLargeError",
    "aim_candidate_cells",
    "auto_method",
    "check_method_size",
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
