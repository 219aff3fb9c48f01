"""Issue 9: a release is written whole or not at all, even when the writer is SIGKILLed.

A forked child writes a new release with ``force=True`` over an existing one and SIGKILLs itself at
the k-th ``os.replace`` / ``os.unlink`` (k = 1, 2, ... until the write completes), or in the middle
of writing the data file. Afterwards ``verify`` (the library call and ``dpsynth ledger verify``) may
pass only when data, card and ledger are all the old ones or all the new ones; the next write
removes every stale temp file and verifies.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from dp_accounting import dp_event
from typer.testing import CliRunner

from dpsynth.accounting import Ledger, PrivacyBudget
from dpsynth.accounting.signing import Signer
from dpsynth.accounting.verify import verify_text
from dpsynth.card import build_card
from dpsynth.release import release_paths, write_release

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork and SIGKILL")

OLD_DATA = "x,y\nold,1\nold,2\n"
NEW_DATA = "x,y\nnew,10\nnew,20\nnew,30\n"



def _sigkill_at_call(kill_at: int):
    """``(killing, calls)``: wrappers made by ``killing`` share the counter ``calls[0]`` and SIGKILL
    the process at call number ``kill_at`` (used in a forked child only)."""
    calls = [0]

    def killing(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        return call

    return killing, calls

def make_ledger(noise: float) -> Ledger:
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit="one row", source_name="in.csv")
    entry = ledger.charge(operation="test.step", mechanism="gaussian", event=dp_event.GaussianDpEvent(noise), delta=1e-6)
    ledger.complete(entry, outputs={})
    return ledger


def write(out: Path, data: str, which: str, noise: float) -> None:
    ledger = make_ledger(noise)
    card = build_card(ledger, extra={"which": which})
    write_release(out, lambda tmp: tmp.write_text(data), ledger, card, force=True)


def run_in_killed_child(kill_at: int | None, write) -> int:
    """Fork; the child runs ``write()`` with ``os.replace`` / ``os.unlink`` wrapped to SIGKILL it at
    the ``kill_at``-th call (``write`` may also kill itself). Returns the number of replace/unlink
    calls the child made (-1 when it was killed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_end)
            killing, calls = _sigkill_at_call(kill_at)
            os.replace, os.unlink = killing(os.replace), killing(os.unlink)
            write()
            os.write(write_end, str(calls[0]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    reported = os.read(read_end, 64).decode()
    os.close(read_end)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return -1
    assert os.WEXITSTATUS(status) == 0, "the child failed without being killed"
    return int(reported)


def write_in_killed_child(out: Path, kill_at: int | None, *, kill_in_data: bool = False) -> int:
    """The child writes the new release and SIGKILLs itself at the ``kill_at``-th replace/unlink
    (or half-way through the data file); see :func:`run_in_killed_child`."""

    def data_writer(tmp: Path) -> None:
        tmp.write_text(NEW_DATA[: len(NEW_DATA) // 2])
        if kill_in_data:
            os.kill(os.getpid(), signal.SIGKILL)
        tmp.write_text(NEW_DATA)

    def write() -> None:
        ledger = make_ledger(7.0)
        write_release(out, data_writer, ledger, build_card(ledger, extra={"which": "new"}), force=True)

    return run_in_killed_child(kill_at, write)


def classify(path: Path, old: bytes, new_marker: bytes) -> str:
    if not path.exists():
        return "missing"
    content = path.read_bytes()
    if content == old:
        return "old"
    return "new" if new_marker in content else "other"


def state_of(out: Path, old: dict[str, bytes]) -> tuple[str, str, str]:
    paths = release_paths(out)
    return (
        classify(paths.data, old["data"], b"new,10"),
        classify(paths.card, old["card"], b"which: new"),
        classify(paths.ledger, old["ledger"], b'"noise_multiplier": 7.0'),
    )


def verifies(out: Path) -> tuple[bool, bool]:
    """(library verify passes, ``dpsynth ledger verify`` exits 0) for the files as they lie."""
    from dpsynth.cli import app

    paths = release_paths(out)
    if not paths.ledger.exists():
        library = False
    else:
        report = verify_text(
            paths.ledger.read_text(),
            trusted_keys=[Signer.owner().public_key_hex],
            data_path=paths.data if paths.data.exists() else None,
            card_path=paths.card if paths.card.exists() else None,
        )
        library = report.status == "pass"
    cli = CliRunner().invoke(app, ["ledger", "verify", str(out)]).exit_code == 0
    return library, cli


def temps_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_sigkill_at_every_rename_never_leaves_a_mixed_release_that_verifies(tmp_path: Path):
    seen = {}
    for k in range(1, 10):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        out = folder / "out.csv"
        write(out, OLD_DATA, "old", 3.0)
        old = {name: path.read_bytes() for name, path in zip(("data", "ledger", "card"), release_paths(out).all())}
        calls = write_in_killed_child(out, kill_at=k)
        state = state_of(out, old)
        library, cli = verifies(out)
        if library or cli:
            assert state in {("old", "old", "old"), ("new", "new", "new")}, (k, state)
        assert library == cli, (k, state, library, cli)
        seen[k] = (state, library, temps_in(folder))
        # the next write removes whatever the killed writer left and verifies
        write(out, OLD_DATA, "again", 4.0)
        assert temps_in(folder) == [], (k, temps_in(folder))
        assert verifies(out) == (True, True)
        if calls >= 0:  # the child ran to the end: k was past its last call
            total = calls
            break
    else:  # pragma: no cover
        pytest.fail("the write never completed")
    # the write does exactly: unlink old ledger, rename data, rename card, rename ledger
    assert total == 4, total
    # k=1 kills before the unlink: the old release, whole, and the three temps of the new one
    assert seen[1][:2] == (("old", "old", "old"), True) and len(seen[1][2]) == 3
    # k=2 kills at the data rename (after the unlink): old data and card, no ledger -- nothing verifies
    assert seen[2][0] == ("old", "old", "missing") and seen[2][1] is False
    assert seen[3][0] == ("new", "old", "missing") and seen[3][1] is False
    assert seen[4][0] == ("new", "new", "missing") and seen[4][1] is False
    assert seen[5][0] == ("new", "new", "new") and seen[5][1] is True


def test_sigkill_while_writing_the_data_leaves_the_old_release_and_a_temp_the_next_run_removes(tmp_path: Path):
    out = tmp_path / "out.csv"
    write(out, OLD_DATA, "old", 3.0)
    old = {name: path.read_bytes() for name, path in zip(("data", "ledger", "card"), release_paths(out).all())}
    assert write_in_killed_child(out, kill_at=None, kill_in_data=True) == -1
    assert state_of(out, old) == ("old", "old", "old")
    assert verifies(out) == (True, True)
    stale = temps_in(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".out.csv.")
    write(out, NEW_DATA, "new", 7.0)
    assert temps_in(tmp_path) == []
    assert verifies(out) == (True, True)


def rebind_in_killed_child(out: Path, kill_at: int) -> bool:
    """The child rebinds a new card and SIGKILLs itself at the ``kill_at``-th replace/unlink.
    Returns True when the child was killed."""
    from dpsynth.release import rebind_card

    return run_in_killed_child(kill_at, lambda: rebind_card(out, lambda card: {**card, "which": "rebound"})) == -1


def test_sigkill_while_rebinding_a_card_never_verifies_a_card_the_ledger_does_not_bind(tmp_path: Path):
    """``dpsynth evaluate`` rewrites the card through ``rebind_card``: ledger renamed first, card last."""
    outcomes = []
    for k in (1, 2, 3):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        out = folder / "out.csv"
        write(out, OLD_DATA, "old", 3.0)
        paths = release_paths(out)
        old_card, old_ledger = paths.card.read_bytes(), paths.ledger.read_bytes()
        killed = rebind_in_killed_child(out, k)
        card = "old" if paths.card.read_bytes() == old_card else "rebound"
        ledger = "old" if paths.ledger.read_bytes() == old_ledger else "new"
        library, cli = verifies(out)
        assert library == cli
        outcomes.append((killed, card, ledger, library))
        if card == "rebound" and ledger == "new":
            assert library, "the whole rebound release must verify"
        else:
            assert library == (card == "old" and ledger == "old"), (k, card, ledger, library)
        # the next rebind (e.g. evaluate run again) recovers and leaves no temp behind
        from dpsynth.release import rebind_card

        rebind_card(out, lambda card: {**card, "which": "recovered"})
        assert verifies(out) == (True, True) and temps_in(folder) == []
    assert outcomes == [
        (True, "old", "old", True),  # killed before the ledger rename: the release as it was
        (True, "old", "new", False),  # new ledger beside the old card: fails on the card hash
        (False, "rebound", "new", True),  # two renames only: the rebind completed
    ]
