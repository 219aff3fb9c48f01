"""Canonical JSON for privacy events and ledgers.

Events are serialised as ``{"type": ClassName, field: value, ...}`` with nested events as nested
objects, and read back **only** through the whitelist :data:`~dpsynth.accounting.events.EVENT_TYPES`.
We never call ``DpEvent.from_named_tuple`` on a file: it imports whatever module the file names.

Canonical form: ``sort_keys=True``, compact separators, ``allow_nan=False``, UTF-8. Python's
shortest-repr floats make the round trip bit-exact, so hashes and recomputed epsilons are stable.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import attr
from dp_accounting import dp_event

from dpsynth.accounting.events import EVENT_TYPES
from dpsynth.errors import DpsynthError


class LedgerFormatError(DpsynthError, ValueError):
    """A ledger or serialised event is malformed, tampered with, or uses an unknown type."""


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj`` (sorted keys, compact, no NaN/inf)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def sha256_hex(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def event_to_json(event: dp_event.DpEvent) -> dict[str, Any]:
    """Serialise a whitelisted event tree to a JSON-ready dict."""
    name = type(event).__name__
    if EVENT_TYPES.get(name) is not type(event):
        raise LedgerFormatError(f"event type {name!r} is not in the ledger whitelist")
    out: dict[str, Any] = {"type": name}
    for field in attr.fields(type(event)):
        out[field.name] = _value_to_json(getattr(event, field.name))
    return out


def _value_to_json(value: Any) -> Any:
    if isinstance(value, dp_event.DpEvent):
        return event_to_json(value)
    if isinstance(value, (list, tuple)):
        return [_value_to_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerFormatError(f"non-finite number {value!r} in an event")
        return float(value)
    # numpy scalars and the like
    try:
        as_float = float(value)
    except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
        raise LedgerFormatError(f"cannot serialise event field value {value!r}") from exc
    if float(as_float).is_integer() and "int" in type(value).__name__:
        return int(as_float)
    return as_float


def event_from_json(obj: Any) -> dp_event.DpEvent:
    """Rebuild an event tree from :func:`event_to_json` output, refusing unknown types/fields."""
    if not isinstance(obj, dict) or "type" not in obj:
        raise LedgerFormatError(f"not a serialised event: {obj!r:.200}")
    name = obj["type"]
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise LedgerFormatError(f"unknown event type {name!r}: refused (not in the whitelist)")
    fields = {f.name: f for f in attr.fields(cls)}
    given = {k: v for k, v in obj.items() if k != "type"}
    unknown = set(given) - set(fields)
    if unknown:
        raise LedgerFormatError(f"unknown field(s) {sorted(unknown)} for event type {name!r}")
    kwargs: dict[str, Any] = {}
    for key, value in given.items():
        kwargs[key] = _value_from_json(value)
    try:
        event = cls(**kwargs)
    except TypeError as exc:
        raise LedgerFormatError(f"bad fields for event type {name!r}: {exc}") from exc
    _check_field_types(event)
    return event


def _value_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        return event_from_json(value)
    if isinstance(value, list):
        return [_value_from_json(v) for v in value]
    return value


def field_names(event: dp_event.DpEvent) -> set[str]:
    return {f.name for f in attr.fields(type(event))}


#: The largest ``count`` a stored event may have (DP-SGD's steps are the largest dpsynth writes).
MAX_EVENT_COUNT = 10_000_000


def _check_field_types(event: dp_event.DpEvent) -> None:
    for field in attr.fields(type(event)):
        value = getattr(event, field.name)
        if field.name in ("event",) and not isinstance(value, dp_event.DpEvent):
            raise LedgerFormatError(f"{type(event).__name__}.{field.name} must be an event")
        if field.name == "events" and not (
            isinstance(value, list) and all(isinstance(v, dp_event.DpEvent) for v in value)
        ):
            raise LedgerFormatError(f"{type(event).__name__}.events must be a list of events")
        if field.name == "count" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise LedgerFormatError(f"{type(event).__name__}.count must be a non-negative integer")
        if field.name == "count" and value > MAX_EVENT_COUNT:
            raise LedgerFormatError(
                f"{type(event).__name__}.count {value} is above {MAX_EVENT_COUNT:,}: no dpsynth call composes that "
                "many steps, and recomputing it would exhaust the verifier"
            )
        if field.name in ("noise_multiplier", "epsilon", "rho", "xi", "sampling_probability") and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
        ):
            raise LedgerFormatError(f"{type(event).__name__}.{field.name} must be a finite number >= 0")
    if field_names(event) >= {"delta"} and not (
        isinstance(event.delta, (int, float)) and not isinstance(event.delta, bool) and 0 <= event.delta < 1
    ):
        raise LedgerFormatError(f"{type(event).__name__}.delta must be in [0, 1)")
    if isinstance(event, dp_event.PoissonSampledDpEvent) and not 0 <= event.sampling_probability <= 1:
        raise LedgerFormatError("PoissonSampledDpEvent.sampling_probability must be in [0, 1]")
