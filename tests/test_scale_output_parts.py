"""Partitioned output (a directory of part files) without Ray: the rows requested are the sum of
the parts, the ledger binds a manifest of every part, and ``dpsynth ledger verify`` fails when a
part is edited, swapped, deleted or renamed, or anything is added to the directory."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dpsynth.accounting import Ledger, verify_text
from dpsynth.accounting.serialization import sha256_hex
from dpsynth.cli import app
from dpsynth.release import release_paths
from dpsynth.tabular.output_parts import plan_parts, read_partitioned, write_partitioned
from dpsynth.tabular.synthesize import Synthesizer
from tests._scale_data import METADATA, make_table, write_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(make_table(), tmp_path_factory.mktemp("parts_in"))


@pytest.fixture(scope="module")
def fitted(inputs):
    return Synthesizer(epsilon=2.0, method="independent", metadata=METADATA, progress=False, backend="stream",
                       seed=5).fit(inputs["csv_dir"])


@pytest.fixture(scope="module")
def release(fitted, tmp_path_factory):
    """A 3-part release (2,345 rows in parts of 1,000), written once; tests copy it before editing."""
    out = tmp_path_factory.mktemp("parts_out") / "out.parquet"
    write_partitioned(fitted, out, rows=2_345, part_rows=1_000, chunk_rows=400)
    return out


def _copy(release, tmp_path):
    out = tmp_path / release.name
    for src in release_paths(release).all():
        dst = tmp_path / src.name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return out


def _verify_cli(out):
    return CliRunner().invoke(app, ["ledger", "verify", str(out)])


def test_parts_plan_sums_to_the_rows_requested():
    assert plan_parts(2_345, 1_000) == [(0, 0, 1_000), (1, 1_000, 1_000), (2, 2_000, 345)]
    assert plan_parts(7, 10) == [(0, 0, 7)]
    with pytest.raises(ValueError):
        plan_parts(0, 10)


def test_partitioned_release_binds_a_manifest_of_every_part_and_verifies(release):
    paths = release_paths(release)
    assert release.is_dir() and paths.ledger.is_file() and paths.card.is_file()
    names = sorted(p.name for p in release.iterdir())
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    data = read_partitioned(release)
    assert len(data) == 2_345 and data["uid"].tolist() == list(range(1, 2_346))  # ids continue across parts
    entry = Ledger.load(paths.ledger).last_release()
    manifest = entry["manifest"]
    assert entry["data_sha256"] == sha256_hex(manifest)
    assert [p["name"] for p in manifest["parts"]] == names and manifest["rows"] == 2_345
    for part in manifest["parts"]:  # the recorded rows and sizes are the files' own
        assert pq.read_metadata(release / part["name"]).num_rows == part["rows"]
        assert (release / part["name"]).stat().st_size == part["bytes"]
    assert [p["rows"] for p in manifest["parts"]] == [1_000, 1_000, 345]
    res = _verify_cli(release)
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "the data file and card" in res.output


def _edit(out):
    part = out / "part-00001.parquet"
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    part.write_bytes(bytes(raw))
    return "part-00001.parquet is not the one this ledger was written with"


def _swap(out):
    a, b = out / "part-00000.parquet", out / "part-00001.parquet"
    a.rename(out / "tmp")
    b.rename(a)
    (out / "tmp").rename(b)
    return "part-00000.parquet is not the one this ledger was written with"


def _delete(out):
    (out / "part-00002.parquet").unlink()
    return "the part part-00002.parquet of"


def _extra(out):
    shutil.copy2(out / "part-00000.parquet", out / "part-00003.parquet")  # a well-formed extra part
    return "part-00003.parquet is not a part of this release (an extra file"


def _hidden(out):
    (out / ".DS_Store").write_bytes(b"x")
    return ".DS_Store is not a part of this release"


def _folder(out):
    (out / "year=2020").mkdir()
    return "is not a part of this release (a folder or link"


def _link(out):
    target = out / "part-00000.parquet"
    moved = out.parent / "elsewhere.parquet"
    target.rename(moved)
    target.symlink_to(moved)  # same bytes, but not a plain file of the release
    return "part-00000.parquet is not a part of this release (a folder or link"


def _as_one_file(out):
    shutil.rmtree(out)
    out.write_bytes(b"PAR1")
    return "is not a directory"


@pytest.mark.parametrize("tamper", [_edit, _swap, _delete, _extra, _hidden, _folder, _link, _as_one_file])
def test_verify_fails_when_the_directory_is_not_the_one_released(release, tmp_path, tamper):
    out = _copy(release, tmp_path)
    assert _verify_cli(out).exit_code == 0
    needle = tamper(out)
    res = _verify_cli(out)
    assert res.exit_code == 1, res.output
    assert needle in " ".join(res.output.split()), res.output
    report = verify_text(release_paths(out).ledger.read_text(), data_path=out, card_path=release_paths(out).card)
    assert not report.ok and any(needle in p for p in report.problems), report.problems


def test_a_single_file_ledger_does_not_bind_a_directory(tmp_path, fitted):
    from dpsynth.tabular.backends import write_streamed

    out = tmp_path / "one.parquet"
    write_streamed(fitted, out, rows=10)
    data = out.read_bytes()
    out.unlink()
    out.mkdir()
    (out / "part-00000.parquet").write_bytes(data)
    res = _verify_cli(out)
    assert res.exit_code == 1 and "the ledger binds a single data file" in " ".join(res.output.split())


def test_rebinding_a_card_keeps_the_manifest_and_refuses_a_tampered_directory(release, tmp_path):
    from dpsynth.release import ReleaseBindingError, rebind_card

    out = _copy(release, tmp_path)
    rebind_card(out, lambda card: {**card, "note": "evaluated"})
    assert _verify_cli(out).exit_code == 0
    ledger = Ledger.load(release_paths(out).ledger)
    releases = [e for e in ledger.entries if e["kind"] == "release"]
    assert len(releases) == 2 and releases[0]["manifest"] == releases[1]["manifest"]
    _delete(out)
    with pytest.raises(ReleaseBindingError, match="not the data file its ledger was written with"):
        rebind_card(out, lambda card: card)


def test_force_replaces_a_partitioned_release_and_a_single_file_one(fitted, tmp_path):
    from dpsynth.tabular.backends import write_streamed

    out = tmp_path / "out.parquet"
    write_streamed(fitted, out, rows=10)
    write_partitioned(fitted, out, rows=30, part_rows=20, force=True)  # file -> directory
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert _verify_cli(out).exit_code == 0
    write_partitioned(fitted, out, rows=5, part_rows=20, force=True)  # directory -> directory
    assert len(read_partitioned(out)) == 5 and _verify_cli(out).exit_code == 0
    write_streamed(fitted, out, rows=7, force=True)  # directory -> file
    assert out.is_file() and len(pd.read_parquet(out)) == 7 and _verify_cli(out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.parquet.lock", "out.parquet",
                                                          "out.parquet.card.yaml", "out.parquet.ledger.json"]


def test_cli_stream_partitioned_writes_parts_and_refuses_what_it_cannot_do(inputs, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(METADATA), encoding="utf-8")
    base = ["tabular", "synth", str(inputs["parquet_dir"]), "--epsilon", "1", "--method", "independent",
            "--metadata", str(meta), "--quiet", "--no-source-budget"]
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(app, base + ["-o", str(out), "--backend", "stream", "--partitioned", "--rows", "250",
                                          "--part-rows", "100"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    assert len(read_partitioned(out)) == 250 and _verify_cli(out).exit_code == 0
    refusals = [
        (["-o", str(tmp_path / "a.csv"), "--partitioned"], "--partitioned and --part-rows are for --backend stream"),
        (["-o", str(tmp_path / "b.csv"), "--backend", "stream", "--part-rows", "10"], "--part-rows is for a partitioned"),
        (["-o", str(inputs["parquet_dir"] / "c.parquet"), "--backend", "stream", "--partitioned"],
         "inside the input directory"),
    ]
    refusals.append((["-o", str(out), "--backend", "stream", "--partitioned", "--force"], "is inside it"))
    out_input = ["tabular", "synth", str(out / "part-00000.csv")] + base[3:]
    for extra, needle in refusals[-1:]:
        res = CliRunner().invoke(app, out_input + extra)
        assert res.exit_code == 2 and needle in " ".join(res.output.split()), res.output
        assert _verify_cli(out).exit_code == 0  # the release holding the input is untouched
    for extra, needle in refusals[:-1]:
        res = CliRunner().invoke(app, base + extra)
        assert res.exit_code == 2 and needle in " ".join(res.output.split()), res.output
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()
    assert not (inputs["parquet_dir"] / "c.parquet").exists()


def test_a_manifest_that_does_not_hash_to_the_entry_or_repeats_a_part_fails(release):
    from dpsynth.accounting.verify import directory_problems

    entry = Ledger.load(release_paths(release).ledger).last_release()
    assert directory_problems(release, entry) == []
    edited = {**entry, "manifest": {**entry["manifest"], "rows": 1}}  # data_sha256 left as it was
    assert "does not hash to the entry's data_sha256" in directory_problems(release, edited)[0]
    parts = entry["manifest"]["parts"]
    twice = {**entry["manifest"], "parts": parts + parts[:1]}
    repeated = {**entry, "manifest": twice, "data_sha256": sha256_hex(twice)}
    assert "names a part twice" in directory_problems(release, repeated)[0]
    assert "malformed manifest" in directory_problems(release, {**entry, "manifest": {"parts": 3}})[0]


def test_a_linked_directory_is_not_the_release(release, tmp_path):
    out = _copy(release, tmp_path)
    real = tmp_path / "real"
    out.rename(real)
    out.symlink_to(real, target_is_directory=True)
    res = _verify_cli(out)
    assert res.exit_code == 1 and "is a symbolic link, not a directory" in " ".join(res.output.split())
