"""Run-time settings of text calls that are not privacy parameters: CPU threads, warnings.

Threads: on a shared machine over-subscribed torch threads made decoding 3-15x slower (issue
10), so a call on CPU runs with ``dpsynth.devices.free_cpu_count()`` threads and restores the
caller's setting afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dpsynth.devices import free_cpu_count


@contextmanager
def cpu_threads(device: torch.device | str) -> Iterator[int]:
    """Inside: torch uses ``free_cpu_count()`` threads when ``device`` is a CPU; restored after."""
    before = torch.get_num_threads()
    wanted = free_cpu_count() if torch.device(device).type == "cpu" else before
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' ``past_key_values`` tuple FutureWarning/deprecation chatter (issue 9)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*past_key_values.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*past_key_values.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*past_key_values.*", category=UserWarning)
        yield
