"""Public workload options of the marginal methods: ``target=`` and ``workload=``.

Both are *public inputs* given by the user (a column a downstream model will predict, a list of
marginals the user cares about); they are recorded in the plan's parameters, and so in the ledger
and the card. Nothing here reads private data: validation uses only the public encoded domain.
"""

from __future__ import annotations

from collections.abc import Sequence

from dpsynth.errors import DpsynthError
from dpsynth.tabular.methods.base import EncodedDomain


class WorkloadError(DpsynthError, ValueError):
    """A ``target`` or ``workload`` option names columns the table does not have, or is malformed."""


def target_option(target: object) -> str | None:
    """``target`` as a column name (or None); only its type is checked here."""
    if target is None:
        return None
    if not isinstance(target, str) or not target:
        raise WorkloadError(f"target must be a column name, got {target!r}")
    return target


def workload_option(workload: object) -> list[tuple[str, ...]] | None:
    """``workload`` as a list of column-name tuples (or None); columns are checked by calibrate."""
    if workload is None:
        return None
    if isinstance(workload, (str, bytes)) or not hasattr(workload, "__iter__"):
        raise WorkloadError("workload must be a list of marginals (lists of column names)")
    out = []
    for w in workload:
        out.append((w,) if isinstance(w, str) else tuple(str(c) for c in w))
    return out


def check_target(domain: EncodedDomain, target: str | None) -> None:
    """Refuse a target that is not a column of the (public) encoded domain."""
    if target is not None and target not in domain.columns:
        raise WorkloadError(f"target column {target!r} is not one of the modelled columns")


def normalise_workload(
    domain: EncodedDomain, workload: Sequence[Sequence[str]] | None, target: str | None = None
) -> list[tuple[str, ...]] | None:
    """The workload as distinct marginals with columns in domain order (None: the default workload)."""
    check_target(domain, target)
    if workload is None:
        return None
    if isinstance(workload, (str, bytes)):
        raise WorkloadError("workload must be a list of marginals (lists of column names)")
    pos = {c: i for i, c in enumerate(domain.columns)}
    out: list[tuple[str, ...]] = []
    for w in workload:
        if isinstance(w, str):
            w = (w,)
        cols = tuple(str(c) for c in w)
        if not cols:
            raise WorkloadError("a workload marginal needs at least one column")
        unknown = [c for c in cols if c not in pos]
        if unknown:
            raise WorkloadError(f"workload marginal {list(cols)} names unknown columns {unknown}")
        if len(set(cols)) != len(cols):
            raise WorkloadError(f"workload marginal {list(cols)} repeats a column")
        key = tuple(sorted(cols, key=pos.__getitem__))
        if key not in out:
            out.append(key)
    if not out:
        raise WorkloadError("workload is empty")
    return out


def check_public_options(method: object, columns: Sequence[str]) -> None:
    """Refuse, from the public modelled column names alone, a ``target`` / ``workload`` that the
    method's ``calibrate`` would refuse (unknown or id column, empty workload, a marginal that
    repeats a column): the plan step calls it before any charge, so such input spends nothing."""
    cols = tuple(str(c) for c in columns)
    if not cols:
        return
    domain = EncodedDomain(cols, (1,) * len(cols))  # the sizes play no part in these checks
    normalise_workload(domain, getattr(method, "workload", None), getattr(method, "target", None))
