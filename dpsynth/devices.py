"""Compute devices and CPU threads: one ``resolve_device`` and one thread-count rule for every package."""

from __future__ import annotations

import os
from typing import Any

from dpsynth.errors import DpsynthError


class DeviceError(DpsynthError, ValueError):
    """A device was asked for that does not exist or is not available here."""


def resolve_device(device: Any = None) -> "Any":
    """A ``torch.device``: ``None`` means CUDA when available, else CPU; anything else is validated."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, str) and not device.strip():
        raise DeviceError("device must be a non-empty string such as 'cpu' or 'cuda'")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}: {exc}") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    return parsed


def free_cpu_count() -> int:
    """CPUs this process may use that are not already busy (affinity minus the 1-minute load), >= 1.

    On a shared machine, over-subscribing torch threads made decoding 3-15x slower; use this to pick
    ``torch.set_num_threads``. ``DPSYNTH_NUM_THREADS`` overrides it.
    """
    env = os.environ.get("DPSYNTH_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        available = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = 0.0
    return max(1, min(available, int(available - load + 0.5)))
