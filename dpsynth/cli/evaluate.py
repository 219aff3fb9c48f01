"""``dpsynth evaluate`` and ``dpsynth mix``: validation of released synthetic data.

``dpsynth evaluate SYNTH --real-holdout HOLDOUT [--private PRIVATE] [--target COL | --label-field L]
[--text-field F]`` prints the report, writes ``SYNTH.eval.json`` and ``SYNTH.eval.html`` and updates
``SYNTH.card.yaml`` (``evals``, ``release_decision``). ``dpsynth mix REAL SYNTH --ratio R -o OUT``
writes a hybrid: its ledger gets a ``real-records-included`` entry and its card says
``differentially_private: false`` and records the (rounded) synthetic ratio. Existing outputs are refused without
``--force``; numbers computed from real data are flagged as not publishable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from dpsynth.cli.common import console, fail, require_input_file
from dpsynth.errors import DpsynthError

DECISION_STYLE = {"ship": "bold green", "regenerate": "bold yellow", "reject": "bold red"}


#: (report section, console label, path of keys to the value) of each console summary row, in order.
_SUMMARY_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("privacy_claim", "ledger epsilon", ("ledger_epsilon",)),
    ("privacy_audit", "audit AUC", ("auc",)),
    ("privacy_audit", "audit TPR @ 1% FPR", ("tpr_at_fpr_0.01",)),
    ("privacy_audit", "audit epsilon lower bound", ("epsilon_lb",)),
    ("utility", "TSTR", ("tstr", "tstr")),
    ("utility", "TRTR", ("tstr", "trtr")),
    ("utility", "ablation gain (holdout)", ("ablation", "gain_holdout")),
    ("fidelity", "mean 1-way TVD", ("marginals", "1way", "mean")),
    ("fidelity", "mean 2-way TVD", ("marginals", "2way", "mean")),
    ("fidelity", "mean 3-way TVD", ("marginals", "3way", "mean")),
    ("fidelity", "3-way TVD sampling floor", ("marginals", "3way", "floor_mean")),
    ("fidelity", "sdmetrics quality", ("sdmetrics_quality", "overall")),
    ("diversity", "self-BLEU", ("self_bleu",)),
    ("diversity", "distinct-2", ("distinct_2",)),
    ("distribution_shift", "4-gram novelty", ("novelty_4gram",)),
    ("distribution_shift", "embedding coverage", ("embedding_coverage",)),
    ("distribution_shift", "MAUVE", ("mauve",)),
    ("contamination", "canaries leaked", ("canaries", "leaked_members")),
    ("contamination", "exact copies of private", ("exact_overlap_private", "rate")),
    ("contamination", "near duplicates of private", ("near_duplicates_private", "rate")),
)


def _summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, publishable?) rows for the console summary."""
    rows: list[tuple[str, str, str]] = []

    for section, label, path in _SUMMARY_ROWS:
        node: Any = report.get(section)
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            continue
        block = report.get(section) or {}
        value = f"{node:.4g}" if isinstance(node, float) else str(node)
        rows.append((label, value, "no (real data)" if block.get("reads_private_data") else "yes"))
    return rows


def _read_label(finding: dict[str, Any]) -> str:
    """``reads real data: private, real_holdout`` or ``publishable`` for one marked decision reason."""
    if finding.get("reads_private_data"):
        return "reads real data: " + ", ".join(finding.get("sources") or ["real data"])
    return "publishable"


def _print_report(report: dict[str, Any], outputs: Any) -> None:
    table = Table(title="dpsynth evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("publishable")
    for row in _summary_rows(report):
        table.add_row(*row)
    console.print(table)
    decision = report["release_decision"]
    style = DECISION_STYLE.get(decision["decision"], "bold")
    console.print(f"release_decision: [{style}]{decision['decision']}[/]")
    for finding in decision.get("findings", []):
        console.print(f"  - {finding['reason']} [dim]({_read_label(finding)})[/]", highlight=False)
    for note in decision.get("note_findings", []):
        console.print(f"  [dim]note: {note['reason']} ({_read_label(note)})[/]", highlight=False)
    console.print(f"[dim]{report['notice']}[/]")
    console.print(f"report: {outputs.json}  {outputs.html}" + (f"  card: {outputs.card}" if outputs.card else
                                                                 "  (no card/ledger beside the data: card not updated)"))


def evaluate_command(
    synthetic: Path = typer.Argument(..., help="Synthetic data (CSV table, or JSONL/JSON/TXT texts)."),
    real_holdout: Path = typer.Option(..., "--real-holdout", help="Real data held out from generation."),
    private: Optional[Path] = typer.Option(None, "--private", help="The generator's private input "
                                           "(enables TRTR, copy checks and the membership audit)."),
    target: Optional[str] = typer.Option(None, "--target", help="Table column to predict (TSTR)."),
    label_field: Optional[str] = typer.Option(None, "--label-field", help="Label field of text records."),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="Text field of records (default 'text')."),
    canaries: Optional[Path] = typer.Option(None, "--canaries", help="Canary JSON from make_canaries/save_canaries."),
    benchmark: Optional[Path] = typer.Option(None, "--benchmark", help="A benchmark file to scan for overlap."),
    json_out: Optional[Path] = typer.Option(None, "--json-out", help="Report JSON path (default SYNTH.eval.json)."),
    html_out: Optional[Path] = typer.Option(None, "--html-out", help="HTML report path (default SYNTH.eval.html)."),
    embedder: str = typer.Option("auto", "--embedder", help="Text embeddings: auto, minilm or hashing."),
    ratio: Optional[float] = typer.Option(None, "--ablation-ratio", help="Synthetic share for the ablation."),
    no_card: bool = typer.Option(False, "--no-card", help="Do not update the dataset card."),
    card_private_evals: bool = typer.Option(
        False, "--card-private-evals",
        help="Also write the numbers computed from real records (not DP) and the release decision into the card "
             "(default: the card gets synthetic-only numbers; the rest stays in the report).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing report files."),
    seed: int = typer.Option(0, "--seed", help="Seed for the evaluation's own sampling."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead of the table."),
) -> None:
    """Evaluate synthetic data against a real holdout and propose ship / regenerate / reject."""
    from dpsynth.evaluate.files import evaluate_files
    from dpsynth.release import OutputExistsError

    if synthetic.is_dir():  # a partitioned release (--partitioned, --backend ray): parts, not one file
        fail(f"{synthetic} is a directory: dpsynth evaluate reads one data file, and evaluating a partitioned "
             "release (a directory of part files) is not supported yet; evaluate a release written as one "
             "file (without --partitioned / --backend ray)")
    for path in (synthetic, real_holdout, private, canaries, benchmark):
        if path is not None:
            require_input_file(path)
    if target and label_field:
        fail("use --target for tables or --label-field for texts, not both")
    if embedder not in ("auto", "minilm", "hashing"):
        fail(f"--embedder must be auto, minilm or hashing, got {embedder!r}")
    try:
        result, outputs = evaluate_files(
            synthetic, real_holdout, private, target=target, label_field=label_field, text_field=text_field,
            canaries_path=canaries, benchmark_path=benchmark, json_path=json_out, html_path=html_out,
            update_card=not no_card, card_private_evals=card_private_evals, force=force, embedder=embedder, ablation_ratio=ratio, seed=seed,
            progress=not as_json)
    except (DpsynthError, OutputExistsError) as exc:
        fail(str(exc))
    except (ValueError, TypeError, KeyError, OSError) as exc:
        fail(str(exc))
    if as_json:
        typer.echo(result.to_json())
    else:
        _print_report(result.report, outputs)


def mix_command(
    real: Path = typer.Argument(..., help="Real data (kept in full)."),
    synthetic: Path = typer.Argument(..., help="Synthetic data to add."),
    ratio: float = typer.Option(..., "--ratio", help="Synthetic share of the output, in [0, 1)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output file (its card records the ratio)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for choosing and shuffling rows."),
    replace: bool = typer.Option(False, "--replace", help="Sample synthetic rows with replacement if short."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Write a hybrid training set: all real records plus a measured share of synthetic ones."""
    from dpsynth.evaluate.files import mix_files
    from dpsynth.release import OutputExistsError

    require_input_file(real)
    require_input_file(synthetic)
    try:
        info = mix_files(real, synthetic, ratio, out, force=force, seed=seed, replace=replace)
    except (DpsynthError, OutputExistsError) as exc:
        fail(str(exc))
    except (ValueError, TypeError, KeyError, OSError) as exc:
        fail(str(exc))
    console.print(f"wrote {info['data']} ({info['real_records']} real + {info['synthetic_records']} synthetic, "
                  f"synthetic_ratio={info['synthetic_ratio']:.4g}); card: {info['card']}", highlight=False)
    if info.get("note"):
        console.print(f"note: {info['note']}", highlight=False)
    console.print("[bold yellow]contains real records: not differentially private[/] "
                  + ("(ledger entry real-records-included written)" if info.get("ledger") else "(no ledger)"),
                  highlight=False)
    console.print(f"[yellow]{info['privacy_scope']}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the top-level ``evaluate`` and ``mix`` commands to ``app``."""
    app.command("evaluate")(evaluate_command)
    app.command("mix")(mix_command)


__all__ = ["register", "evaluate_command", "mix_command"]
