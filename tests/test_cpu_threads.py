"""The thread-count rule (dpsynth.devices.free_cpus / free_cpu_count)."""

from __future__ import annotations

import pytest

from dpsynth.devices import free_cpu_count, free_cpus, runnable_other_tasks


@pytest.mark.parametrize(
    "available, load, others, expected",
    [
        (2, 1.9, 0, 2),  # the load is this process's own past work: nothing else runs now
        (2, 1.9, 1, 1),  # another job really runs
        (2, 0.2, 3, 2),  # a momentary burst does not outweigh a quiet minute
        (4, 3.0, None, 1),  # no /proc: the load average alone, as before
        (2, 9.0, 9, 1),  # never below one thread
        (8, 0.0, 0, 8),
    ],
)
def test_free_cpus_counts_only_work_that_is_busy_now_and_over_the_minute(available, load, others, expected):
    assert free_cpus(available, load, others) == expected


def test_free_cpu_count_honours_the_override_and_stays_positive(monkeypatch):
    monkeypatch.setenv("DPSYNTH_NUM_THREADS", "3")
    assert free_cpu_count() == 3
    monkeypatch.delenv("DPSYNTH_NUM_THREADS")
    assert free_cpu_count() >= 1
    others = runnable_other_tasks(samples=2, pause_s=0.0)
    assert others is None or others >= 0
