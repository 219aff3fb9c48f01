"""dpsynth.release: the reservation, the bound write, rebinding a card, disk-full, output-over-input, memory.

The crash test (SIGKILL at every rename) is in test_release_crash.py; the CLI races in test_release_cli.py.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dp_accounting import dp_event
from typer.testing import CliRunner

from dpsynth.accounting import Ledger, PrivacyBudget
from dpsynth.accounting.signing import Signer
from dpsynth.accounting.verify import file_sha256, verify_text
from dpsynth.card import build_card, read_card
from dpsynth.errors import DpsynthError
from dpsynth.release import (
    OutputBusyError,
    OutputExistsError,
    OutputFolderMissingError,
    OutputOverInputError,
    ReleaseBindingError,
    ReleaseWriteError,
    RowsTooLargeError,
    check_rows_fit_memory,
    lock_path_for,
    rebind_card,
    refuse_output_over_input,
    release_paths,
    reserve_release,
    write_release,
)


def owner_key() -> str:
    return Signer.owner().public_key_hex


def make_ledger(noise: float = 3.0) -> Ledger:
    ledger = Ledger.create(PrivacyBudget(5.0, 1e-5), privacy_unit="one row", source_name="in.csv")
    entry = ledger.charge(operation="test.step", mechanism="gaussian", event=dp_event.GaussianDpEvent(noise), delta=1e-6)
    ledger.complete(entry, outputs={"rows": 3})
    return ledger


def write_text_release(out: Path, text: str, *, force: bool = False, ledger: Ledger | None = None):
    ledger = ledger or make_ledger()
    return write_release(out, lambda tmp: tmp.write_text(text), ledger, build_card(ledger), force=force)


def verify(out: Path):
    paths = release_paths(out)
    return verify_text(paths.ledger.read_text(), trusted_keys=[owner_key()], data_path=paths.data, card_path=paths.card)


def try_reserve_elsewhere(out: Path) -> subprocess.CompletedProcess:
    """Reserve ``out`` from another process (the reservation is re-entrant inside this one)."""
    code = (
        "import sys\nfrom dpsynth.release import reserve_release, OutputBusyError\n"
        "try:\n    with reserve_release(sys.argv[1], force=True): print('RESERVED')\n"
        "except OutputBusyError as exc: print('BUSY', exc)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60)


def leftovers(folder: Path) -> list[str]:
    """Files in ``folder`` apart from the (empty, harmless) reservation lock files."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


# ------------------------------------------------------------------------------------------ binding
def test_release_binds_data_and_card_hashes_and_leaves_caller_ledger_alone(tmp_path: Path):
    out = tmp_path / "out.csv"
    ledger = make_ledger()
    before = ledger.to_json()
    card = build_card(ledger)
    paths = write_release(out, lambda tmp: tmp.write_text("a,b\n1,2\n"), ledger, card)
    assert ledger.to_json() == before  # the release entry went to a copy
    written = Ledger.load(paths.ledger)
    release = written.last_release()
    assert release == {**release, "kind": "release", "data_name": "out.csv",
                       "data_sha256": file_sha256(paths.data), "card_sha256": file_sha256(paths.card)}
    assert written.entries[-1]["kind"] == "release"
    # the card names the head before the release entry (the entry binds the card, so it cannot name it)
    assert read_card(paths.card)["privacy"]["ledger_head_hash"] == ledger.head_hash == written.entries[-2]["hash"]
    report = verify(out)
    assert report.status == "pass" and report.files_checked, report.problems
    assert leftovers(tmp_path) == ["out.csv", "out.csv.card.yaml", "out.csv.ledger.json"]


def test_swapped_data_file_beside_a_real_ledger_fails_verification(tmp_path: Path):
    """Issue 8: the private input copied over synthetic.csv beside a real ledger must not verify."""
    private = tmp_path / "private.csv"
    private.write_text("name,salary\nalice,100\nbob,200\n")
    out = tmp_path / "synthetic.csv"
    write_text_release(out, "name,salary\nx,150\ny,160\n")
    assert verify(out).status == "pass"
    shutil.copyfile(private, out)
    report = verify(out)
    assert report.status == "fail"
    assert any("data file" in p and "not the one" in p for p in report.problems), report.problems
    # and through the CLI, which finds the data file and card beside the ledger
    from dpsynth.cli import app

    result = CliRunner().invoke(app, ["ledger", "verify", str(out)])
    assert result.exit_code == 1, result.output
    assert "not the one this ledger was written with" in result.output


def test_swapped_card_fails_verification(tmp_path: Path):
    out = tmp_path / "out.csv"
    paths = write_text_release(out, "a\n1\n")
    paths.card.write_text(paths.card.read_text().replace("epsilon", "epsilon_note", 1))
    assert verify(out).status == "fail"


# ------------------------------------------------------------------------------------------ reservation
def test_existing_output_refused_without_force_and_replaced_with_force(tmp_path: Path):
    out = tmp_path / "out.csv"
    write_text_release(out, "a\n1\n")
    old_ledger = release_paths(out).ledger.read_text()
    with pytest.raises(OutputExistsError) as info:
        write_text_release(out, "a\n2\n")
    assert isinstance(info.value, DpsynthError) and isinstance(info.value, FileExistsError)
    assert release_paths(out).ledger.read_text() == old_ledger and out.read_text() == "a\n1\n"
    write_text_release(out, "a\n2\n", force=True)
    assert out.read_text() == "a\n2\n" and verify(out).status == "pass"


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(OutputFolderMissingError, match="does not exist"):
        write_text_release(tmp_path / "nope" / "out.csv", "a\n1\n")


def test_reservation_is_exclusive_across_processes_and_released_on_every_exit(tmp_path: Path):
    out = tmp_path / "out.csv"
    with reserve_release(out) as reservation:
        assert reservation.lock_path == lock_path_for(out) == tmp_path / ".out.csv.lock"
        other = try_reserve_elsewhere(out)
        assert other.stdout.startswith("BUSY"), other.stdout + other.stderr
        assert "being written by another dpsynth run" in other.stdout and str(out) in other.stdout
        with reserve_release(out):  # re-entrant inside this process (write_release inside a CLI run)
            pass
        assert try_reserve_elsewhere(out).stdout.startswith("BUSY")  # the inner exit did not release it
    assert try_reserve_elsewhere(out).stdout.startswith("RESERVED")
    with pytest.raises(RuntimeError):
        with reserve_release(out):
            raise RuntimeError("boom")
    assert try_reserve_elsewhere(out).stdout.startswith("RESERVED")
    write_text_release(out, "a\n1\n")
    with pytest.raises(OutputExistsError):  # refused inside the lock: released again afterwards
        with reserve_release(out):
            pass
    assert try_reserve_elsewhere(out).stdout.startswith("RESERVED")


def test_busy_output_error_is_a_dpsynth_error():
    assert issubclass(OutputBusyError, DpsynthError) and issubclass(OutputBusyError, FileExistsError)
    assert issubclass(OutputExistsError, DpsynthError) and issubclass(ReleaseWriteError, DpsynthError)


def test_stale_temps_of_a_killed_writer_are_removed_by_the_next_reservation(tmp_path: Path):
    out = tmp_path / "out.csv"
    stale = [tmp_path / ".out.csv.abc123_x.tmp", tmp_path / ".out.csv.ledger.json.zz9zz9zz.tmp",
             tmp_path / ".out.csv.card.yaml.q1w2e3r4.tmp", tmp_path / ".out.csv.partial",
             tmp_path / "..out.csv.partial.k3j4h5g6.tmp"]
    keep = [tmp_path / ".out.csv.eval.json.abcdefgh.tmp", tmp_path / ".other.csv.abcdefgh.tmp",
            tmp_path / ".out.csv.notatemp"]
    for p in stale + keep:
        p.write_text("partial")
    write_text_release(out, "a\n1\n")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)


# ------------------------------------------------------------------------------------------ disk full
def _enospc(tmp: Path) -> None:
    tmp.write_text("half a fi")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_data_gives_release_write_error_and_leaves_no_files(tmp_path: Path):
    out = tmp_path / "out.csv"
    ledger = make_ledger()
    with pytest.raises(ReleaseWriteError, match="disk is full.*nothing was released") as info:
        write_release(out, _enospc, ledger, build_card(ledger))
    assert isinstance(info.value, DpsynthError)
    assert leftovers(tmp_path) == []
    assert try_reserve_elsewhere(out).stdout.startswith("RESERVED")


def test_disk_full_on_the_ledger_temp_keeps_the_old_release_whole(tmp_path: Path, monkeypatch):
    out = tmp_path / "out.csv"
    write_text_release(out, "a\n1\n")
    before = {p.name: p.read_bytes() for p in release_paths(out).all()}
    import dpsynth.release as release

    real = release.write_temp

    def full_on_ledger(path, write, *args):
        if str(path).endswith(".ledger.json"):
            return real(path, _enospc, *args)
        return real(path, write, *args)

    monkeypatch.setattr(release, "write_temp", full_on_ledger)
    with pytest.raises(ReleaseWriteError, match="nothing was released"):
        write_text_release(out, "a\n2\n", force=True)
    assert {p.name: p.read_bytes() for p in release_paths(out).all()} == before
    assert leftovers(tmp_path) == sorted(before)
    assert verify(out).status == "pass"


# ------------------------------------------------------------------------------------------ rebind
def test_rebind_card_binds_the_new_card_and_keeps_the_data_hash(tmp_path: Path):
    out = tmp_path / "out.csv"
    paths = write_text_release(out, "a\n1\n")
    data_hash = file_sha256(out)
    rebind_card(out, lambda card: {**card, "release_decision": "ship"})
    assert read_card(paths.card)["release_decision"] == "ship"
    ledger = Ledger.load(paths.ledger)
    releases = [e for e in ledger.entries if e["kind"] == "release"]
    assert len(releases) == 2 and releases[-1]["data_sha256"] == data_hash
    assert releases[-1]["card_sha256"] == file_sha256(paths.card) != releases[0]["card_sha256"]
    assert verify(out).status == "pass"
    rebind_card(out, {"schema": "dpsynth-card/1", "replaced": True})  # a plain dict works too
    assert verify(out).status == "pass"


def test_rebind_card_refuses_a_swapped_data_file_or_an_edited_card(tmp_path: Path):
    out = tmp_path / "out.csv"
    paths = write_text_release(out, "a\n1\n")
    ledger_before = paths.ledger.read_text()
    out.write_text("a\nPRIVATE\n")
    with pytest.raises(ReleaseBindingError, match="not the data file"):
        rebind_card(out, lambda card: card)
    out.write_text("a\n1\n")
    paths.card.write_text(paths.card.read_text() + "note: edited by hand\n")
    with pytest.raises(ReleaseBindingError, match="not a card its ledger"):
        rebind_card(out, lambda card: card)
    assert paths.ledger.read_text() == ledger_before
    paths.ledger.unlink()
    with pytest.raises(ReleaseBindingError, match="no release"):
        rebind_card(out, {})


def test_rebind_card_needs_the_key_that_signs_the_ledger(tmp_path: Path):
    out = tmp_path / "out.csv"
    foreign = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit="one row", source_name="x", signer=Signer.generate())
    write_release(out, lambda tmp: tmp.write_text("a\n1\n"), foreign, build_card(foreign))
    before = {p.name: p.read_bytes() for p in release_paths(out).all()}
    with pytest.raises(ReleaseBindingError, match="only the ledger's key holder.*--no-card"):
        rebind_card(out, lambda card: card)
    assert {p.name: p.read_bytes() for p in release_paths(out).all()} == before


# ------------------------------------------------------------------------------------------ inputs
def test_output_over_input_is_refused_in_every_spelling(tmp_path: Path):
    data = tmp_path / "in.csv"
    data.write_text("a\n1\n")
    with pytest.raises(OutputOverInputError, match="never overwrites an input"):
        refuse_output_over_input(data, data)
    with pytest.raises(OutputOverInputError):
        refuse_output_over_input(tmp_path / "sub" / ".." / "in.csv", data)
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    with pytest.raises(OutputOverInputError):
        refuse_output_over_input(link, data)
    hard = tmp_path / "hard.csv"
    os.link(data, hard)
    with pytest.raises(OutputOverInputError):
        refuse_output_over_input(hard, data)
    # the output's ledger or card would land on the input
    meta = tmp_path / "x.csv.card.yaml"
    meta.write_text("public: metadata\n")
    with pytest.raises(OutputOverInputError):
        refuse_output_over_input(tmp_path / "x.csv", data, meta)
    # the output would land on the ledger or card of an input that is itself a release
    write_text_release(tmp_path / "synth.csv", "a\n1\n")
    with pytest.raises(OutputOverInputError, match="belongs to"):
        refuse_output_over_input(tmp_path / "synth.csv.ledger.json", tmp_path / "synth.csv")
    refuse_output_over_input(tmp_path / "out.csv", data, None, meta)  # different files: fine


# ------------------------------------------------------------------------------------------ memory
def test_rows_that_cannot_fit_in_memory_are_refused_with_a_clear_message():
    with pytest.raises(RowsTooLargeError, match=r"--rows=100,000,000,000,000 rows x 4 columns .* at most") as info:
        check_rows_fit_memory(10**14, 4, name="--rows")
    assert isinstance(info.value, DpsynthError)
    check_rows_fit_memory(1000, 4)  # small requests pass
    check_rows_fit_memory(None, 4)
    with pytest.raises(RowsTooLargeError, match="at most 31,250 rows"):
        check_rows_fit_memory(31_251, 1, available=1_000_000)
    check_rows_fit_memory(31_250, 1, available=1_000_000)


def test_evaluate_rewrites_the_card_and_the_release_still_verifies(tmp_path: Path):
    import numpy as np
    import pandas as pd

    from dpsynth.evaluate.files import evaluate_files

    rng = np.random.default_rng(0)

    def frame(n):
        x = rng.normal(size=n).round(3)
        return pd.DataFrame({"x": x, "c": rng.choice(["a", "b"], n), "label": np.where(x > 0, "pos", "neg")})

    out = tmp_path / "synth.csv"
    ledger = make_ledger()
    synthetic = frame(80)
    write_release(out, lambda tmp: synthetic.to_csv(tmp, index=False), ledger, build_card(ledger))
    frame(80).to_csv(tmp_path / "holdout.csv", index=False)
    card_before = release_paths(out).card.read_bytes()
    evaluate_files(out, tmp_path / "holdout.csv", target="label", run_sdmetrics=False, card_private_evals=True)
    assert release_paths(out).card.read_bytes() != card_before
    assert read_card(release_paths(out).card)["release_decision"] is not None
    assert verify(out).status == "pass", verify(out).problems


def test_release_files_get_the_permissions_of_any_new_file(tmp_path: Path):
    old = os.umask(0o022)
    try:
        paths = write_text_release(tmp_path / "out.csv", "a\n1\n")
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in paths.all()} == {oct(0o644)}


def test_every_unlink_and_rename_of_a_release_is_made_durable_before_the_next(tmp_path: Path, monkeypatch):
    import dpsynth.release as release

    out = tmp_path / "out.csv"
    write_text_release(out, "a\n1\n")
    log: list[str] = []
    real_replace, real_unlink, real_sync = os.replace, os.unlink, release.fsync_dir

    def replace(src, dst):
        log.append("rename " + Path(dst).name)
        return real_replace(src, dst)

    def unlink(path, *args, **kwargs):
        log.append("unlink " + Path(path).name)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(release, "fsync_dir", lambda folder: log.append("fsync folder"))
    write_text_release(out, "a\n2\n", force=True)
    assert log == ["unlink out.csv.ledger.json", "fsync folder", "rename out.csv", "fsync folder",
                   "rename out.csv.card.yaml", "fsync folder", "rename out.csv.ledger.json", "fsync folder"]


def test_a_rename_that_fails_midway_says_no_release_is_in_place_and_removes_the_temps(tmp_path: Path, monkeypatch):
    out = tmp_path / "out.csv"
    write_text_release(out, "a\n1\n")
    real_replace = os.replace

    def refuse_card(src, dst):
        if str(dst).endswith(".card.yaml"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_card)
    with pytest.raises(ReleaseWriteError, match="broke off.*No ledger is in place.*--force"):
        write_text_release(out, "a\n2\n", force=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert not release_paths(out).ledger.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    write_text_release(out, "a\n3\n", force=True)
    assert verify(out).status == "pass"


def test_a_shared_ledger_file_is_snapshotted_and_left_unchanged(tmp_path: Path):
    from dpsynth.accounting.ledger_file import LedgerFile

    shared = LedgerFile.create(tmp_path / "source.ledger.json", PrivacyBudget(3.0, 1e-5), privacy_unit="one row",
                               source_name="in.csv")
    shared.charge(operation="test.step", mechanism="gaussian", event=dp_event.GaussianDpEvent(3.0), delta=1e-6)
    before = (tmp_path / "source.ledger.json").read_bytes()
    out = tmp_path / "out.csv"
    write_release(out, lambda tmp: tmp.write_text("a\n1\n"), shared, build_card(shared.load()))
    assert (tmp_path / "source.ledger.json").read_bytes() == before
    assert Ledger.load(release_paths(out).ledger).last_release()["data_sha256"] == file_sha256(out)
    assert verify(out).status == "pass"
