"""A release reservation held by another thread, as a concurrent dpsynth run would hold it (the
reservation is re-entrant within one thread, so a test needs a second thread to see it refused)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dpsynth.release import reserve_release


@contextmanager
def held_by_another_run(path: Path, force: bool = False) -> Iterator[None]:
    """Hold ``path``'s reservation in a second thread for the ``with`` block."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with reserve_release(path, force=force):
            held.set()
            done.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30), "the other thread did not get the reservation"
        yield
    finally:
        done.set()
        thread.join(60)
