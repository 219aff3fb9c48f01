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


def free_cpus(available: int, load_1min: float, runnable_others: int | None) -> int:
    """Threads to use: ``available`` minus the CPUs other work keeps busy, at least 1.

    Busy is the smaller of the 1-minute load average and the number of other runnable tasks
    right now (``None`` when unknown: the load average alone). The load average alone counts
    this process's own recent work as "busy": a second call right after a first one in the same
    process saw the first one's load and took 1 thread of 2 (measured: a private-prediction cell
    run after a PE cell in ``bench/text.py compare``). Other jobs that really run show up in both.
    """
    busy = load_1min if runnable_others is None else min(load_1min, float(runnable_others))
    return max(1, min(available, int(available - busy + 0.5)))


def runnable_other_tasks(samples: int = 5, pause_s: float = 0.01) -> int | None:
    """Most runnable tasks seen in ``samples`` reads of ``/proc/loadavg``, minus the reader; None off Linux."""
    import time

    most = None
    for index in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        most = max(most or 0, running - 1)
        if index + 1 < samples:
            time.sleep(pause_s)
    return most


def free_cpu_count() -> int:
    """CPUs this process may use that are not already busy (:func:`free_cpus`), >= 1.

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
    return free_cpus(available, load, runnable_other_tasks())
