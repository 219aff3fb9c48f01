"""A partitioned release is written whole or not at all, even when the writer is SIGKILLed.

The pattern of ``tests/test_release_crash.py``: a forked child writes a new partitioned release
with ``force=True`` over an old one and SIGKILLs itself at the k-th ``os.replace`` / ``os.unlink``
(k = 1, 2, ... until the write completes), or in the middle of writing a part. Afterwards
``verify`` (library and CLI) may pass only when the directory, card and ledger are all old or all
new; the next write removes every hidden folder and temp file the killed writer left.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from dpsynth.card import build_card
from dpsynth.release import release_paths
from dpsynth.release_parts import describe_part, part_name, write_partitioned_release
from tests.test_release_crash import make_ledger, run_in_killed_child, verifies

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and SIGKILL")

OLD = ["x\nold-a\n", "x\nold-b\n"]
NEW = ["x\nnew-1\nnew-2\n", "x\nnew-3\n", "x\nnew-4\n"]


def parts_writer(contents, kill_in_part: int | None = None):
    def write_parts(folder: Path):
        out = []
        for i, text in enumerate(contents):
            path = folder / part_name(i, "csv")
            path.write_text(text[: len(text) // 2])
            if i == kill_in_part:
                os.kill(os.getpid(), signal.SIGKILL)
            path.write_text(text)
            out.append(describe_part(path, text.count("\n") - 1))
        return out

    return write_parts


def write(out: Path, contents, which: str, noise: float, kill_in_part: int | None = None) -> None:
    ledger = make_ledger(noise)
    card = build_card(ledger, extra={"which": which})
    write_partitioned_release(out, parts_writer(contents, kill_in_part), ledger, card, fmt="csv", force=True)


def write_in_killed_child(out: Path, kill_at: int | None, kill_in_part: int | None = None) -> int:
    """The child writes the new release and SIGKILLs itself at the ``kill_at``-th replace/unlink
    (or in the middle of part ``kill_in_part``); see :func:`run_in_killed_child`."""
    return run_in_killed_child(kill_at, lambda: write(out, NEW, "new", 7.0, kill_in_part))


def state_of(out: Path) -> tuple[str, str, str]:
    paths = release_paths(out)
    if not paths.data.is_dir():
        data = "missing"
    else:
        texts = [p.read_text() for p in sorted(paths.data.iterdir())]
        data = "old" if texts == OLD else "new" if texts == NEW else "other"

    def kind(path: Path, new_marker: str) -> str:
        if not path.exists():
            return "missing"
        return "new" if new_marker in path.read_text() else "old"

    return data, kind(paths.card, "which: new"), kind(paths.ledger, '"noise_multiplier": 7.0')


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


def test_sigkill_at_every_step_never_leaves_a_partitioned_release_that_verifies_mixed(tmp_path: Path):
    seen = {}
    for k in range(1, 15):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        out = folder / "out.csv"
        write(out, OLD, "old", 3.0)
        calls = write_in_killed_child(out, kill_at=k)
        state = state_of(out)
        library, cli = verifies(out)
        if library or cli:
            assert state in {("old", "old", "old"), ("new", "new", "new")}, (k, state)
        assert library == cli, (k, state, library, cli)
        seen[k] = (state, library, leftovers(folder))
        write(out, OLD, "again", 4.0)  # the next write removes whatever the killed writer left
        assert leftovers(folder) == [], (k, leftovers(folder))
        assert verifies(out) == (True, True)
        if calls >= 0:
            total = calls
            break
    else:  # pragma: no cover
        pytest.fail("the write never completed")
    # unlink the old ledger, move the old directory aside, rename the new one, the card, the ledger,
    # then remove the two old parts moved aside (after the commit point)
    assert total == 7, total
    assert seen[1][:2] == (("old", "old", "old"), True)
    assert any(n.endswith(".parts") for n in seen[1][2])  # the new parts, in the hidden temp folder
    assert seen[2][0] == ("old", "old", "missing") and seen[2][1] is False
    assert seen[3][0] == ("missing", "old", "missing") and seen[3][1] is False  # old directory moved aside
    assert seen[4][0] == ("new", "old", "missing") and seen[4][1] is False
    assert seen[5][0] == ("new", "new", "missing") and seen[5][1] is False
    assert seen[6][:2] == (("new", "new", "new"), True)  # committed; the old parts are still aside
    assert any(n.endswith(".old") for n in seen[6][2])


def test_sigkill_while_writing_a_part_leaves_the_old_release(tmp_path: Path):
    out = tmp_path / "out.csv"
    write(out, OLD, "old", 3.0)
    assert write_in_killed_child(out, kill_at=None, kill_in_part=1) == -1
    assert state_of(out) == ("old", "old", "old")
    assert verifies(out) == (True, True)
    assert [n for n in leftovers(tmp_path) if n.endswith(".parts")]
    write(out, NEW, "new", 7.0)
    assert leftovers(tmp_path) == [] and state_of(out) == ("new", "new", "new")
    assert verifies(out) == (True, True)


def test_two_writers_never_both_succeed_on_one_output(tmp_path: Path):
    from dpsynth.release import OutputBusyError

    out = tmp_path / "out.csv"
    inner = []

    def write_parts(folder: Path):  # while this writer holds the output, a second one is refused
        with pytest.raises(OutputBusyError):
            from threading import Thread

            errors = []
            t = Thread(target=lambda: _try(errors))
            t.start()
            t.join()
            raise errors[0]
        inner.append(True)
        return parts_writer(NEW)(folder)

    def _try(errors):
        try:
            write(out, OLD, "other", 3.0)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    ledger = make_ledger(7.0)
    write_partitioned_release(out, write_parts, ledger, build_card(ledger, extra={"which": "new"}), fmt="csv")
    assert inner and state_of(out) == ("new", "new", "new") and verifies(out) == (True, True)
