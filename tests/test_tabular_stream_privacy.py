"""Stream backend: nothing read from a data row reaches a message, nothing is read before the
charge, and the source fingerprint is salted (review T1, T2)."""

from __future__ import annotations

import json
import traceback

import pytest
from typer.testing import CliRunner

from dpsynth.accounting import BudgetExceededError, Ledger, PrivacyBudget
from dpsynth.accounting.fingerprint import fingerprint_bytes, matches_bytes, salt_of
from dpsynth.cli import app
from dpsynth.tabular import private_table
from dpsynth.tabular.private_table import TableSource, TableSourceError
from dpsynth.tabular.synthesize import Synthesizer

SECRET = "ALICE-SECRET-SSN-123-45-6789"
META = {"columns": {"age": {"type": "numerical", "lower": 0, "upper": 100},
                    "city": {"type": "categorical", "categories": ["Paris", "Lyon", "Nice"]}}}
GOOD = "age,city\n31,Paris\n45,Lyon\n52,Nice\n"
BAD = f"age,city\n31,Paris\n45,Lyon,{SECRET}\n52,Nice\n"  # one row with a field too many


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def all_text(exc: BaseException) -> str:
    """The message and everything a traceback of it would print (chained causes included)."""
    return str(exc) + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def completions(ledger) -> list[dict]:
    return [e for e in ledger.entries if e["kind"] == "completion"]


@pytest.mark.parametrize("row_count", [None, 3])  # DP row count stage first, or the method stage first
def test_a_malformed_row_fails_after_the_charge_and_is_never_quoted(tmp_path, row_count):
    bad = write(tmp_path, "bad.csv", BAD)
    meta = dict(META, **({"row_count": row_count} if row_count else {}))
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="bad.csv")
    synth = Synthesizer(epsilon=1.0, method="independent", metadata=meta, backend="stream", ledger=ledger,
                        progress=False)
    with pytest.raises(TableSourceError) as info:
        synth.fit(bad)
    assert SECRET not in all_text(info.value) and "ALICE" not in all_text(info.value)
    assert "does not match the header" in str(info.value)
    # read inside the charged stage: the charge stays, recorded as failed (as the in-memory CLI's reader)
    assert len(ledger.charges()) == 1
    assert [c["status"] for c in completions(ledger)] == ["failed"]


def test_the_header_is_read_from_the_header_line_only(tmp_path):
    bad = write(tmp_path, "bad.csv", BAD)
    assert TableSource.from_path(bad).column_names() == ("age", "city")  # the bad row is not parsed
    raw = tmp_path / "latin.csv"
    raw.write_bytes(b"age,city\n31,Par\xefs\n")  # not UTF-8 in a data row, within the first block
    assert TableSource.from_path(raw).column_names() == ("age", "city")


def test_budget_refusal_reads_nothing_and_is_the_same_with_a_bad_row(tmp_path, monkeypatch):
    def must_not_read(*args, **kwargs):  # pragma: no cover - the assertion is that it never runs
        raise AssertionError("a data row was read before the charge")

    monkeypatch.setattr(private_table, "iter_frames", must_not_read)
    monkeypatch.setattr(TableSource, "fingerprint", must_not_read)
    messages = []
    for folder, text in (("good", GOOD), ("bad", BAD)):
        path = write(tmp_path / folder, "t.csv", text)
        ledger = Ledger.create(PrivacyBudget(0.5, 1e-6), privacy_unit="row", source_name="t.csv")
        synth = Synthesizer(epsilon=1.0, method="independent", metadata=META, backend="stream", ledger=ledger,
                            progress=False)
        with pytest.raises(BudgetExceededError) as info:
            synth.fit(path)
        assert not ledger.charges()
        messages.append(str(info.value))
    assert messages[0] == messages[1] and SECRET not in messages[1]


def test_cli_stream_malformed_row_charges_and_shows_no_row(tmp_path, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    strict = CliRunner(env={"DPSYNTH_SOURCE_BUDGET": ""})
    bad = write(tmp_path, "bad.csv", BAD)
    meta = write(tmp_path, "meta.json", json.dumps(META))
    assert strict.invoke(app, ["budget", "init", str(bad), "--epsilon", "1.5", "--delta", "1e-5"]).exit_code == 0
    args = ["tabular", "synth", str(bad), "--epsilon", "1", "--metadata", str(meta), "--method", "independent",
            "--backend", "stream", "-q"]
    res = strict.invoke(app, args + ["-o", str(tmp_path / "o.csv")])
    assert res.exit_code == 2 and "does not match the header" in res.output
    assert SECRET not in res.output and not (tmp_path / "o.csv").exists()
    # the second run is refused for budget (1 + 1 > 1.5): before any row is read, no row in the message
    again = strict.invoke(app, args + ["-o", str(tmp_path / "o2.csv")])
    assert again.exit_code == 2 and "source budget" in again.output and SECRET not in again.output


def test_stream_fingerprints_are_salted_unlinkable_and_recheckable(tmp_path):
    good = write(tmp_path, "good.csv", GOOD)
    source = TableSource.from_path(good)
    f1, f2 = source.fingerprint(), source.fingerprint()
    assert f1 != f2 and f1.split(":")[2] != f2.split(":")[2]  # fresh salt: two releases are unlinkable
    assert f1.startswith("hmac-sha256-salted:") and len(f1.split(":")) == 3 and salt_of(f1) is not None
    data = good.read_bytes()
    assert f1 == fingerprint_bytes(data, salt=salt_of(f1)) and matches_bytes(f1, data)  # the in-memory format
    assert source.matches(f1) and source.matches(f2)
    good.write_text(GOOD + "60,Nice\n", encoding="utf-8")  # one more record
    assert not source.matches(f1) and not matches_bytes(f1, good.read_bytes())


def test_directory_fingerprints_are_salted_and_recheckable(tmp_path):
    write(tmp_path / "d", "part-0.csv", GOOD)
    part = write(tmp_path / "d", "part-1.csv", GOOD)
    source = TableSource.from_path(tmp_path / "d")
    f1, f2 = source.fingerprint(), source.fingerprint()
    assert f1 != f2 and source.matches(f1) and source.matches(f2)
    part.write_text(GOOD + "60,Nice\n", encoding="utf-8")
    assert not source.matches(f1)


def test_stream_release_fingerprint_is_taken_after_the_charge_and_verifies_with_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    good = write(tmp_path, "good.csv", GOOD)
    meta = write(tmp_path, "meta.json", json.dumps(META))
    seen = []
    real = TableSource.fingerprint

    def spy(self, *args, **kwargs):
        seen.append(len(ledger.charges()))  # charges made when the fingerprint is taken
        return real(self, *args, **kwargs)

    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="good.csv")
    monkeypatch.setattr(TableSource, "fingerprint", spy)
    Synthesizer(epsilon=1.0, method="independent", metadata=META, backend="stream", ledger=ledger,
                progress=False).fit(good)
    assert seen == [1]  # once, inside the first charged stage
    monkeypatch.setattr(TableSource, "fingerprint", real)

    runner = CliRunner()
    outs = [tmp_path / "o1.csv", tmp_path / "o2.csv"]
    for out in outs:
        res = runner.invoke(app, ["tabular", "synth", str(good), "-o", str(out), "--epsilon", "1", "--metadata",
                                  str(meta), "--method", "independent", "--backend", "stream", "-q"])
        assert res.exit_code == 0, res.output
    prints = [Ledger.load(out.with_name(out.name + ".ledger.json"), signer=None).source_fingerprints() for out in outs]
    assert prints[0] and prints[1] and set(prints[0]).isdisjoint(prints[1])  # same data, unlinkable values
    assert prints[0][0] in outs[0].with_name("o1.csv.card.yaml").read_text()
    verify = runner.invoke(app, ["ledger", "verify", str(outs[0]), "--source", str(good)])
    assert "matches the ledger's fingerprint" in verify.output, verify.output
    assert verify.exit_code == 0, verify.output
    other = write(tmp_path / "other", "good.csv", GOOD + "60,Nice\n")
    mismatch = runner.invoke(app, ["ledger", "verify", str(outs[0]), "--source", str(other)])
    assert mismatch.exit_code != 0 and "is not the source" in mismatch.output


def test_ledger_verify_source_accepts_a_partitioned_input_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("DPSYNTH_HOME", str(tmp_path / "home"))
    write(tmp_path / "d", "part-0.csv", GOOD)
    part = write(tmp_path / "d", "part-1.csv", GOOD)
    meta = write(tmp_path, "meta.json", json.dumps(META))
    out = tmp_path / "o.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["tabular", "synth", str(tmp_path / "d"), "-o", str(out), "--epsilon", "1",
                              "--metadata", str(meta), "--method", "independent", "--backend", "stream", "-q"])
    assert res.exit_code == 0, res.output
    verify = runner.invoke(app, ["ledger", "verify", str(out), "--source", str(tmp_path / "d")])
    assert verify.exit_code == 0 and "matches the ledger's fingerprint" in " ".join(verify.output.split()), verify.output
    part.write_text(GOOD + "60,Nice\n", encoding="utf-8")  # one more record in one part
    mismatch = runner.invoke(app, ["ledger", "verify", str(out), "--source", str(tmp_path / "d")])
    assert mismatch.exit_code == 1 and "is not the source" in " ".join(mismatch.output.split())


def test_messages_never_name_a_hive_folders_value(tmp_path):
    from dpsynth.tabular.private_table import shown_path, unreadable_part

    root = tmp_path / "hive"
    write(root / "city=SECRETVALUE", "p.csv", "age,extra\n1,2\n")
    write(root / "city=Paris", "p.csv", "age\n1\n")
    source = TableSource.from_path(root)
    with pytest.raises(TableSourceError) as caught:
        source.column_names()
    assert "SECRETVALUE" not in all_text(caught.value) and "city=..." in str(caught.value)
    assert "SECRETVALUE" not in str(unreadable_part(root / "city=SECRETVALUE" / "p.csv", "csv"))
    assert shown_path(root / "city=SECRETVALUE" / "p=1.csv").endswith("city=.../p=1.csv")  # the file name is kept
    write(root / "city=OTHERSECRET", "bad.csv", "")  # an empty part
    with pytest.raises(TableSourceError) as caught:
        TableSource.from_path(root)
    assert "OTHERSECRET" not in all_text(caught.value)


def test_an_undecodable_hive_folder_value_is_missing_not_a_refusal(tmp_path):
    """Folder names are data: one that does not decode is a missing value, as an unparsable CSV
    value is -- no refusal (it would depend on the value) and no message quoting it."""
    root = tmp_path / "hive"
    write(root / "k=%FFsecret", "part-0.csv", "age\n1\n")
    write(root / "k=Paris", "part-1.csv", "age\n2\n")
    source = TableSource.from_path(root)
    assert source.partition_keys == ("k",)
    assert sorted(source.partition_of(i)["k"] or "" for i in range(2)) == ["", "Paris"]


def test_a_raw_non_utf8_folder_name_is_refused_before_anything_without_showing_it(tmp_path):
    import os

    root = tmp_path / "hive"
    root.mkdir()
    raw = os.path.join(os.fsencode(root), b"k=\xffSECRET")
    try:
        os.mkdir(raw)
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    with open(os.path.join(raw, b"part-0.csv"), "wb") as fh:
        fh.write(b"age\n1\n")
    with pytest.raises(TableSourceError) as caught:
        TableSource.from_path(root)
    assert "SECRET" not in all_text(caught.value) and "not UTF-8" in str(caught.value)
