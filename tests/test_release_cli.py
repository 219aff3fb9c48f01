"""Issue 9 §1 through the CLI: one writer per output, before anything is read or charged; ``-o`` never
lands on an input; ``--rows`` beyond memory and a full disk end in clear exit-2 messages."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dpsynth.cli import app
from dpsynth.release import release_paths

runner = CliRunner()

META = {
    "row_count": 20,
    "columns": {
        "age": {"type": "numerical", "lower": 20, "upper": 70, "integer": True, "bins": 5, "nullable": False},
        "group": {"type": "categorical", "categories": ["a", "b"], "nullable": False},
    },
}


@pytest.fixture()
def table(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "in.csv"
    data.write_text("age,group\n" + "".join(f"{20 + 2 * i},{'ab'[i % 2]}\n" for i in range(20)))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    return data, meta


def synth_args(data: Path, meta: Path, out: Path, *extra: str) -> list[str]:
    return ["tabular", "synth", str(data), "-o", str(out), "--epsilon", "1", "--metadata", str(meta),
            "--method", "independent", "--seed", "1", "--quiet", *extra]


@contextmanager
def held_elsewhere(out: Path):
    """Another process holds the reservation of ``out`` for the ``with`` block."""
    code = "import sys\nfrom dpsynth.release import reserve_release\nwith reserve_release(sys.argv[1], force=True):\n" \
           "    print('HELD', flush=True)\n    sys.stdin.read()\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "HELD"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


# -------------------------------------------------------------------------------- (b) two writers
RACER = textwrap.dedent(
    """
    import builtins, io, sys, time
    from pathlib import Path

    role, go, release, markers, *argv = sys.argv[1:]
    markers = Path(markers)
    private = str(Path(argv[2]).resolve())

    import dpsynth.accounting.ledger as ledger_module
    from dpsynth.cli import app

    real_open = builtins.open

    def spying_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and str(Path(file).resolve()) == private:
            (markers / (role + ".read")).touch()
            deadline = time.time() + 120  # hold the reservation until the test has seen the other racer end
            while not Path(release).exists() and time.time() < deadline:
                time.sleep(0.01)
        return real_open(file, *args, **kwargs)

    builtins.open = io.open = spying_open
    real_charge = ledger_module.Ledger.charge

    def spying_charge(self, **kwargs):
        (markers / (role + ".charge")).touch()
        return real_charge(self, **kwargs)

    ledger_module.Ledger.charge = spying_charge
    (markers / (role + ".ready")).touch()
    while not Path(go).exists():
        time.sleep(0.005)
    sys.argv = ["dpsynth", *argv]
    app()
    """
)


def test_two_runs_on_one_output_exactly_one_wins_and_the_other_reads_and_spends_nothing(table, tmp_path: Path):
    data, meta = table
    out = tmp_path / "out.csv"
    racer = tmp_path / "racer.py"
    racer.write_text(RACER)
    markers = tmp_path / "markers"
    markers.mkdir()
    go, release = tmp_path / "go", tmp_path / "release"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
    procs = {
        role: subprocess.Popen([sys.executable, str(racer), role, str(go), str(release), str(markers),
                                *synth_args(data, meta, out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for role in ("one", "two")
    }
    deadline = time.time() + 120  # both have imported everything and poll for `go`: start them together
    while not all((markers / f"{role}.ready").exists() for role in procs) and time.time() < deadline:
        assert all(p.poll() is None for p in procs.values()), {r: p.communicate() for r, p in procs.items()}
        time.sleep(0.02)
    go.touch()
    deadline = time.time() + 120  # the racer that opened the input waits in `open` until one racer has ended
    while all(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(0.02)
    release.touch()
    results = {role: (p.wait(timeout=300), *p.communicate()) for role, p in procs.items()}
    codes = sorted(code for code, _, _ in results.values())
    assert codes == [0, 2], results
    winner = next(role for role, (code, _, _) in results.items() if code == 0)
    loser = next(role for role, (code, _, _) in results.items() if code == 2)
    assert "being written by another dpsynth run" in results[loser][2], results[loser]
    assert "Traceback" not in results[loser][2]
    assert (markers / f"{winner}.read").exists() and (markers / f"{winner}.charge").exists()
    assert not (markers / f"{loser}.read").exists(), "the refused run opened the private input"
    assert not (markers / f"{loser}.charge").exists(), "the refused run charged a ledger"
    assert runner.invoke(app, ["ledger", "verify", str(out)]).exit_code == 0


def test_busy_output_is_refused_before_the_input_is_read(table, tmp_path: Path, monkeypatch):
    data, meta = table
    out = tmp_path / "out.csv"
    import dpsynth.cli.tabular as tabular_cli

    def must_not_read(*args, **kwargs):  # pragma: no cover - the assertion is that it never runs
        raise AssertionError("the input was read while another run held the output")

    monkeypatch.setattr(tabular_cli, "_read_csv", must_not_read)
    with held_elsewhere(out):
        result = runner.invoke(app, synth_args(data, meta, out, "--force"))
    assert result.exit_code == 2, result.output
    assert "being written by another dpsynth run" in result.output
    assert not any(p.exists() for p in release_paths(out).all())


def test_text_synth_busy_output_is_refused_before_the_input_is_read(tmp_path: Path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"body": "hello"}) + "\n")
    out = tmp_path / "out.jsonl"
    import dpsynth.cli.text as text_cli

    def must_not_read(*args, **kwargs):  # pragma: no cover
        raise AssertionError("the input was read while another run held the output")

    monkeypatch.setattr(text_cli, "read_text_records", must_not_read)
    with held_elsewhere(out):
        result = runner.invoke(app, ["text", "synth", str(src), "--text-field", "body", "-o", str(out),
                                     "--epsilon", "1", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "being written by another dpsynth run" in result.output


def test_the_cli_releases_its_reservation_when_it_ends(table, tmp_path: Path):
    data, meta = table
    out = tmp_path / "out.csv"
    assert runner.invoke(app, synth_args(data, meta, out)).exit_code == 0
    refused = runner.invoke(app, synth_args(data, meta, out))  # exists, no --force: refused inside the lock
    assert refused.exit_code == 2 and "refusing to overwrite" in refused.output
    with held_elsewhere(out):  # another process can take it: this process let go on both exits
        pass
    assert runner.invoke(app, synth_args(data, meta, out, "--force")).exit_code == 0
    assert runner.invoke(app, ["ledger", "verify", str(out)]).exit_code == 0


# -------------------------------------------------------------------------------- (d) -o = input
def test_output_equal_to_input_is_refused_even_with_force_and_the_input_is_untouched(table, tmp_path: Path):
    data, meta = table
    before = data.read_bytes()
    for target in (data, tmp_path / "." / "in.csv"):
        result = runner.invoke(app, synth_args(data, meta, target, "--force"))
        assert result.exit_code == 2, result.output
        assert "never overwrites an input" in result.output
    hard = tmp_path / "hard.csv"
    os.link(data, hard)
    assert runner.invoke(app, synth_args(data, meta, hard, "--force")).exit_code == 2
    assert data.read_bytes() == before
    assert not release_paths(data).ledger.exists() and not release_paths(data).card.exists()
    # the metadata is an input too
    assert runner.invoke(app, synth_args(data, meta, meta, "--force")).exit_code == 2
    assert json.loads(meta.read_text()) == META


def test_text_output_equal_to_input_is_refused_even_with_force(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"body": "private text"}) + "\n")
    before = src.read_bytes()
    result = runner.invoke(app, ["text", "synth", str(src), "--text-field", "body", "-o", str(src),
                                 "--epsilon", "1", "--force", "--quiet"])
    assert result.exit_code == 2 and "never overwrites an input" in result.output
    assert src.read_bytes() == before


# -------------------------------------------------------------------------------- (f) --rows
def test_rows_beyond_memory_are_refused_before_fitting(table, tmp_path: Path, monkeypatch):
    data, meta = table
    out = tmp_path / "out.csv"
    from dpsynth.tabular.synthesize import Synthesizer

    def must_not_fit(self, *args, **kwargs):  # pragma: no cover
        raise AssertionError("fitted despite an impossible --rows")

    monkeypatch.setattr(Synthesizer, "fit", must_not_fit)
    result = runner.invoke(app, synth_args(data, meta, out, "--rows", str(10**14)))
    assert result.exit_code == 2, result.output
    assert "--rows=100,000,000,000,000 rows x 2 columns" in result.output and "at most" in result.output
    assert "Traceback" not in result.output
    assert not any(p.exists() for p in release_paths(out).all())


# -------------------------------------------------------------------------------- (e) disk full
def test_disk_full_during_the_write_is_a_clear_exit_2_and_leaves_no_release(table, tmp_path: Path, monkeypatch):
    data, meta = table
    out = tmp_path / "out.csv"
    real_to_csv = pd.DataFrame.to_csv

    def full_disk(self, path_or_buf=None, *args, **kwargs):
        if path_or_buf is not None and Path(str(path_or_buf)).name.startswith(".out.csv."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_to_csv(self, path_or_buf, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    result = runner.invoke(app, synth_args(data, meta, out))
    assert result.exit_code == 2, result.output
    assert "disk is full" in result.output and "nothing was released" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv") or p.name.startswith("out.csv")) == [
        ".out.csv.lock"
    ]


def test_mix_output_equal_to_an_input_is_refused_even_with_force(tmp_path: Path):
    real = tmp_path / "real.csv"
    real.write_text("a,b\n1,2\n3,4\n")
    synth = tmp_path / "synth.csv"
    synth.write_text("a,b\n5,6\n7,8\n")
    before = real.read_bytes()
    for target in (real, synth):
        result = runner.invoke(app, ["mix", str(real), str(synth), "--ratio", "0.5", "-o", str(target), "--force"])
        assert result.exit_code == 2 and "never overwrites an input" in result.output, result.output
    assert real.read_bytes() == before
