"""``dpsynth ledger show | verify | recompute | compose`` -- the ledger inspection tool.

Every command takes either a ledger (``*.ledger.json``) or the dataset it sits beside.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from dpsynth.accounting.inspect import PROFILE_DELTAS, compose_ledgers, load_checked, recompute, summarize, total_profile
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.serialization import LedgerFormatError
from dpsynth.accounting.verify import verify_text
from dpsynth.errors import DpsynthError
from dpsynth.cli.common import EXIT_VERIFY_FAILED, console, fail
from dpsynth.release import ledger_path_for, release_paths

app = typer.Typer(help="Inspect, verify, recompute and compose privacy ledgers.", no_args_is_help=True)


def _ledger_file(path: Path) -> Path:
    ledger = ledger_path_for(path)
    if not ledger.exists():
        if path.exists() and ledger != path:
            fail(f"{path} has no ledger beside it (expected {ledger})")
        fail(f"ledger {ledger} does not exist")
    return ledger


def _load(path: Path) -> tuple[Ledger, bool, list[str]]:
    file = _ledger_file(path)
    try:
        return load_checked(file)
    except (json.JSONDecodeError, KeyError, TypeError, LedgerFormatError, UnicodeDecodeError) as exc:
        fail(f"{file} is not a readable dpsynth ledger: {exc}", EXIT_VERIFY_FAILED)


def _trusted_keys(public_key: Optional[Path], trust_key_id: Optional[List[str]]) -> set[str]:
    """Keys the verifier trusts: the files and ids given, plus the owner's own key when it exists here."""
    from dpsynth.accounting.keys import KeyFileError, signing_key_path
    from dpsynth.accounting.signing import Signer, read_public_key

    trusted: set[str] = set(k.strip().lower() for k in (trust_key_id or []))
    if public_key is not None:
        try:
            trusted.add(read_public_key(public_key))
        except (OSError, KeyFileError, ValueError) as exc:
            fail(f"cannot read public key {public_key}: {exc}")
    if os.environ.get("DPSYNTH_SIGNING_KEY") or signing_key_path().exists():
        trusted.add(Signer.owner().public_key_hex)
    return trusted


def _release_files(ledger_file: Path, text: str) -> tuple[Path | None, Path | None]:
    """The data file and card a release ledger binds (checked even when missing: a missing one fails).

    A ledger with no ``release`` entry and no files beside it (a source-budget ledger) binds no files.
    """
    paths = release_paths(ledger_file.with_name(ledger_file.name[: -len(".ledger.json")]))
    binds = '"kind": "release"' in text
    if binds or paths.data.exists() or paths.card.exists():
        return paths.data, paths.card
    return None, None


@app.command()
def show(
    path: Path = typer.Argument(..., help="A ledger, or the dataset it sits beside."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
) -> None:
    """Summarise a ledger: total spend, budget, remaining, one row per entry. Exits 1 if it does not verify."""
    ledger, ok, problems = _load(path)
    try:
        summary = summarize(ledger, verified=ok)
    except (KeyError, TypeError, ValueError, AttributeError, DpsynthError) as exc:  # too malformed to summarise
        for problem in problems:
            console.print(f"[red]FAIL[/] {escape(problem)}", highlight=False)
        fail(f"{_ledger_file(path)} does not verify and cannot be summarised ({type(exc).__name__}); "
             f"{len(problems)} verification problem(s) above", EXIT_VERIFY_FAILED)
    if not ok:
        summary["verification_problems"] = problems
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        if not ok:
            raise typer.Exit(EXIT_VERIFY_FAILED)
        return
    console.print(f"[bold]Ledger[/] {summary['ledger_id']}  source: {summary['source']}")
    console.print(f"Signed by: {summary['signer_key_id'] or 'nobody (unsigned)'}")
    console.print(f"Privacy unit: {summary['privacy_unit']}  (neighbouring relation: {summary['neighbouring_relation']})")
    console.print(
        f"Spent: epsilon={summary['epsilon_spent']:.6g}, delta={summary['delta_spent']:.3g}   "
        f"Budget: epsilon={summary['epsilon_budget']:g}, delta={summary['delta_budget']:.3g}   "
        f"Remaining: epsilon={summary['epsilon_remaining']:.6g}, delta={summary['delta_remaining']:.3g}"
    )
    console.print(f"Composition across calls: {summary['composition_rule']}")
    if summary["contains_real_records"]:
        console.print(f"[bold red]{NOT_DP_MESSAGE}[/]")
    table = Table(show_header=True)
    for col in ("seq", "kind", "operation", "mechanism", "epsilon", "delta", "accountant"):
        table.add_column(col)
    for row in summary["entries"]:
        table.add_row(
            str(row["seq"]), row["kind"], row.get("operation", f"completes #{row.get('completes')}" if "completes" in row else ""),
            row.get("mechanism", ""), f"{row['epsilon']:.6g}" if "epsilon" in row else "",
            f"{row['delta']:.3g}" if "delta" in row else "", row.get("accountant", ""),
        )
    console.print(table)
    if not ok:
        console.print("[bold red]WARNING: this ledger does NOT verify:[/] " + "; ".join(problems))
        raise typer.Exit(EXIT_VERIFY_FAILED)


NOT_DP_MESSAGE = "contains real records: not differentially private"


@app.command()
def verify(
    path: Path = typer.Argument(..., help="A ledger, or the dataset it sits beside."),
    public_key: Optional[Path] = typer.Option(None, "--public-key", help="Trust this Ed25519 public key (hex as `dpsynth keys show-public` prints, or PEM)."),
    trust_key_id: Optional[List[str]] = typer.Option(None, "--trust-key-id", help="Trust this key id (ed25519:...); repeatable."),
    source: Optional[Path] = typer.Option(None, "--source", help="Also check that this file is the ledger's source (needs the owner's source key)."),
) -> None:
    """Check form, hash chain, signatures, recomputed charges and the bound data/card files.

    Exit codes: 0 pass (signed by a trusted key); 1 fail; 3 intact but unsigned; 4 intact and signed
    by a key you have not said you trust; 5 intact but the output holds real records (not DP).
    """
    file = _ledger_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{file} is not UTF-8 text: {exc}", EXIT_VERIFY_FAILED)
    data_path, card_path = _release_files(file, text)
    report = verify_text(text, trusted_keys=_trusted_keys(public_key, trust_key_id), data_path=data_path, card_path=card_path)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    if not report.ok:
        for problem in report.problems:
            console.print(f"[red]FAIL[/] {problem}", highlight=False)
        fail(f"ledger {file} failed verification ({len(report.problems)} problem(s)); first: {report.problems[0]}", EXIT_VERIFY_FAILED)
    if source is not None:
        _check_source(file, source)
    bound = " and the data file and card it was written with" if report.files_checked else ""
    console.print(
        f"integrity: OK {file}: canonical form, hash chain, signatures, recomputed charges, spend within budget{bound}",
        highlight=False,
    )
    status = report.status
    if status == "unsigned":
        console.print("[yellow]integrity: unsigned[/] -- nobody vouches for this ledger: anyone could have written it (exit 3)")
    elif status == "untrusted":
        console.print(
            f"[yellow]signed by {report.signer_key_id}, a key you have not said you trust[/]: pass --public-key FILE or "
            f"--trust-key-id {report.signer_key_id} after checking it with the data owner (exit 4)",
            highlight=False,
        )
    elif status == "not-dp":
        console.print(f"[bold red]{NOT_DP_MESSAGE}[/] (exit 5)")
    else:
        console.print(f"[green]PASS[/] signed by trusted key {report.signer_key_id}", highlight=False)
    console.print(
        "[dim]Verification cannot prove that the recorded noise was really applied: that rests on running the released code.[/dim]"
    )
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _check_source(file: Path, source: Path) -> None:
    from dpsynth.accounting.fingerprint import matches_bytes, matches_dataframe

    ledger = Ledger.load(file, signer=None)
    fingerprints = ledger.source_fingerprints()
    if source.is_dir():  # a partitioned input (stream / ray backends): its parts' salted fingerprint
        from dpsynth.tabular.private_table import TableSource, TableSourceError

        try:
            table = TableSource.from_path(source)
        except TableSourceError as exc:
            fail(str(exc), EXIT_VERIFY_FAILED)
        if any(table.matches(f) for f in fingerprints):
            console.print(f"source {source} matches the ledger's fingerprint")
            return
        fail(f"{source} is not the source recorded in {file} (or the source key differs)", EXIT_VERIFY_FAILED)
    data = source.read_bytes()
    if any(matches_bytes(f, data) for f in fingerprints):
        console.print(f"source {source} matches the ledger's fingerprint")
        return
    if source.suffix.lower() == ".csv":
        import pandas as pd

        frames = [pd.read_csv(source), pd.read_csv(source, dtype=str, keep_default_na=False)]
        if any(matches_dataframe(f, df) for f in fingerprints for df in frames):
            console.print(f"source {source} matches the ledger's fingerprint")
            return
    fail(f"{source} is not the source recorded in {file} (or the source key differs)", EXIT_VERIFY_FAILED)


#: what the default recompute reports: the smallest of every bound that applies (as in the ledger)
MIN_LABEL = "min over pld, rdp, basic, stages"


def _finite_json(value: Any) -> Any:
    """``value`` with every infinite or NaN float written as the string ``"inf"`` / ``"-inf"`` /
    ``"nan"`` (strict JSON has no such numbers; an accountant can return infinity, e.g. PLD below
    an approximate-DP event's own delta)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


@app.command("recompute")
def recompute_cmd(
    path: Path = typer.Argument(..., help="A ledger, or the dataset it sits beside."),
    accountant: Optional[str] = typer.Option(None, "--accountant", help="pld, rdp or basic (default: the minimum over all that apply)."),
    delta: Optional[float] = typer.Option(None, "--delta", help="Report the total epsilon at this delta."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-derive epsilon from the stored events and print an epsilon-by-delta profile."""
    if accountant is not None and accountant not in ("pld", "rdp", "basic"):
        fail("--accountant must be pld, rdp or basic")
    if delta is not None and not 0 < delta < 1:
        fail("--delta must be strictly between 0 and 1")
    ledger, ok, problems = _load(path)
    if not ok:
        fail("the ledger does not verify, refusing to recompute from it: " + "; ".join(problems), EXIT_VERIFY_FAILED)
    deltas = sorted(set(PROFILE_DELTAS) | ({delta} if delta else set()))
    try:
        entries = recompute(ledger, accountant, deltas)
        totals = total_profile(ledger, deltas, accountant)
    except Exception as exc:  # an accountant that does not support an event, etc.
        fail(f"cannot recompute with accountant {accountant or MIN_LABEL}: {exc}")
    result = {
        "accountant": accountant or MIN_LABEL,
        "entries": [
            {"seq": e.seq, "operation": e.operation, "mechanism": e.mechanism, "recorded_epsilon": e.recorded_epsilon,
             "delta": e.recorded_delta, "recomputed_epsilon": e.recomputed_epsilon,
             "recomputed_by": e.accountant, "profile": e.profile}
            for e in entries
        ],
        "total_profile": totals,
        "total_rule": "basic composition over charges, delta split evenly",
    }
    if delta is not None:
        result["epsilon_at_delta"] = dict(totals)[delta]
    if as_json:
        typer.echo(json.dumps(_finite_json(result), indent=2, allow_nan=False))
        return
    for e in entries:
        console.print(f"#{e.seq} {e.operation} ({e.mechanism}): recorded epsilon={e.recorded_epsilon:.6g} at delta={e.recorded_delta:.3g}; "
                      f"recomputed {result['accountant']}: {e.recomputed_epsilon:.6g} (from {e.accountant})")
    table = Table("delta", "total epsilon", title=f"epsilon-by-delta profile ({result['accountant']}; {result['total_rule']})")
    for d, eps in totals:
        table.add_row(f"{d:.0e}", f"{eps:.6g}")
    console.print(table)
    if delta is not None:
        console.print(f"total epsilon at delta={delta:g}: {result['epsilon_at_delta']:.6g}")


@app.command()
def compose(
    paths: List[Path] = typer.Argument(..., help="Ledgers (or datasets) of releases from the same source."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The total privacy spend of several releases from the same source (basic composition)."""
    ledgers = []
    for path in paths:
        ledger, ok, problems = _load(path)
        if not ok:
            fail(f"{path} does not verify: " + "; ".join(problems), EXIT_VERIFY_FAILED)
        ledgers.append(ledger)
    try:
        total = compose_ledgers(ledgers)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(total, indent=2))
        return
    console.print(f"{total['ledgers']} release(s): epsilon={total['epsilon_spent']:.6g}, delta={total['delta_spent']:.3g} ({total['rule']})")
    for warning in total["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
