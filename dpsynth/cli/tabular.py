"""``dpsynth tabular ...`` commands.

* ``dpsynth tabular metadata-template IN.csv [-o META.yaml]`` -- reads the header only; writes the
  column names with placeholders to fill from public knowledge.
* ``dpsynth tabular infer-metadata IN.csv -o META.yaml --epsilon E`` -- a charged DP pass (ledger
  beside the file); or ``infer-metadata --public-sample SAMPLE.csv -o META.yaml`` from a file the
  user declares public (no budget).
* ``dpsynth tabular synth IN.csv -o OUT.csv --epsilon E [--metadata META.yaml] ...`` -- writes
  OUT.csv, OUT.csv.ledger.json and OUT.csv.card.yaml.

CSVs are read **as text** (no type inference from the values); the delimiter comes from the header
line (or ``--sep``). The default delta is a public constant (1e-6), never derived from the row
count. The quality lines printed at the end compare the synthetic table with the private input:
they are **not DP**, are shown only on this console for the data owner, and are written nowhere.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import Optional

import typer

from dpsynth.constants import DEFAULT_DELTA

app = typer.Typer(help="DP synthesis of CSV tables.", no_args_is_help=True)

#: Above this many modelled columns the CLI prints a pre-start estimate of the work.
WIDE_TABLE_COLUMNS = 16


def _read_csv(path: Path, sep: Optional[str]):
    """The CSV as text (see :func:`dpsynth.tabular.parsing.read_csv_text`), or a clean exit."""
    import pandas as pd

    from dpsynth.cli.common import fail
    from dpsynth.tabular.parsing import CsvFormatError, read_csv_text

    try:
        df = read_csv_text(path, sep)
    except CsvFormatError as exc:
        fail(str(exc))
    except pd.errors.EmptyDataError:
        fail(f"{path} has no data (empty CSV)")
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error, ValueError):
        # No parser detail (line numbers, field counts): it would describe private rows before any charge.
        fail(f"cannot parse {path} as CSV: a row does not match the header (field count or quoting) or the "
             "text is not UTF-8; check the delimiter (--sep) and the quoting")
    if df.shape[1] == 0:
        fail(f"{path} has no columns")
    return df


def _check_new_file(path: Path, force: bool) -> None:
    from dpsynth.cli.common import fail

    if not path.parent.exists():
        fail(f"output folder {path.parent} does not exist")
    if path.exists() and not force:
        fail(f"refusing to overwrite existing output {path} (pass --force)")


def _check_yaml_name(path: Path) -> None:
    """Metadata files written here are YAML (with comments): refuse a name that says otherwise."""
    from dpsynth.cli.common import fail

    if path.suffix.lower() not in (".yaml", ".yml"):
        fail(f"metadata files written by dpsynth are YAML: name the output *.yaml or *.yml, not {path.name}")


def _sep_option():
    return typer.Option(None, "--sep", help="Column delimiter (default: the one found in the header line).")


@app.command("metadata-template")
def metadata_template(
    input: Path = typer.Argument(..., help="CSV whose header gives the column names (only the header is read)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Metadata file to write (default: print it)."),
    sep: Optional[str] = _sep_option(),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages besides errors."),
) -> None:
    """Write a metadata template (column names and placeholders) to fill from public knowledge."""
    from dpsynth.cli.common import console, fail, require_input_file
    from dpsynth.release import atomic_write_text
    from dpsynth.tabular.infer import metadata_template as template
    from dpsynth.tabular.parsing import CsvFormatError, read_header

    require_input_file(input)
    try:
        names, _ = read_header(input, sep)
    except CsvFormatError as exc:
        fail(str(exc))
    text = template(names)
    if output is None:
        typer.echo(text, nl=False)
        return
    _check_yaml_name(output)
    _check_new_file(output, force)
    atomic_write_text(output, text)
    if not quiet:
        console.print(f"Wrote {output} ({len(names)} columns). Fill in each column from public knowledge, then run "
                      f"`dpsynth tabular synth {input} -o OUT.csv --epsilon 1 --metadata {output}`.", highlight=False)


@app.command("infer-metadata")
def infer_metadata(
    ctx: typer.Context,
    input: Optional[Path] = typer.Argument(None, help="Private CSV for a charged DP pass (with --epsilon)."),
    output: Path = typer.Option(..., "-o", "--output", help="Metadata file to write (YAML)."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", "-e", help="Budget of the DP pass (> 0, finite)."),
    delta: float = typer.Option(DEFAULT_DELTA, "--delta", "-d", help="Delta of the DP pass in (0, 1); public default 1e-6."),
    public_sample: Optional[Path] = typer.Option(
        None, "--public-sample", help="A CSV you declare PUBLIC: exact metadata from it, no budget spent."
    ),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Partial public metadata to complete."),
    sep: Optional[str] = _sep_option(),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="Budget ledger to charge (default: the source budget of INPUT)."),
    no_source_budget: bool = typer.Option(False, "--no-source-budget", help="Each call starts a fresh budget; nothing limits the total over calls."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No messages besides errors."),
) -> None:
    """Write a metadata file from a charged DP pass over INPUT, or from a public sample.

    Every check on public inputs (arguments, the header, the --metadata file and the domain plan)
    and the reservation of the output come before the source-budget charge.
    """
    from dpsynth.cli.common import console, fail, parse_budget, require_input_file, reserve_output, warn_large_epsilon
    from dpsynth.release import atomic_write_text
    from dpsynth.tabular.infer import metadata_from_public_sample, schema_to_yaml

    if (input is None) == (public_sample is None):
        fail("give either INPUT with --epsilon (a charged DP pass) or --public-sample SAMPLE.csv (no budget)")
    _check_yaml_name(output)
    if public_sample is not None:
        if epsilon is not None:
            fail("--epsilon is for a DP pass over INPUT; --public-sample spends no budget")
        require_input_file(public_sample)
        _check_new_file(output, force)
        reserve_output(ctx, output, public_sample, metadata, force=force)  # never over an input, one writer
        df = _read_csv(public_sample, sep)
        schema = metadata_from_public_sample(df)
        from dpsynth.release import release_paths, remove_ledger_and_card

        remove_ledger_and_card(release_paths(output))  # (--force) an earlier DP pass's ledger and card
        atomic_write_text(output, schema_to_yaml(
            schema, f"Metadata from {public_sample.name}, declared PUBLIC by the user (no DP, no budget).\n"
                    "Check it: a value that is in this file is treated as public knowledge."))
        if not quiet:
            console.print(f"Wrote {output} from the public sample {public_sample} (no privacy budget spent).",
                          highlight=False)
        return
    if epsilon is None:
        fail("--epsilon is required for a DP pass over INPUT")
    budget = parse_budget(epsilon, delta)
    if not quiet:
        warn_large_epsilon(budget.epsilon)
    assert input is not None
    require_input_file(input)
    if metadata is not None and not metadata.exists():
        fail(f"metadata file {metadata} does not exist")
    from dpsynth.cli.budget import source_budget_charge
    from dpsynth.errors import DpsynthError
    from dpsynth.tabular.infer import plan_infer_metadata
    from dpsynth.tabular.synthesize import PRIVACY_UNIT

    # held until the command returns: a second run on OUTPUT is refused here, before any charge;
    # OUTPUT may not be INPUT or the --metadata file (nor their ledger / card), even with --force
    reserve_output(ctx, output, input, metadata, force=force)
    header = _header_frame(input, sep)
    try:  # the --metadata file against the header, and the DP pass's plan: public, before the charge
        plan_infer_metadata(header, budget.epsilon, budget.delta, str(metadata) if metadata is not None else None)
    except (DpsynthError, ValueError) as exc:
        fail(str(exc))
    with source_budget_charge(input, budget=budget, release=output, ledger=ledger_file,
                              no_source_budget=no_source_budget, privacy_unit=PRIVACY_UNIT):
        df = _read_csv(input, sep)
        _run_infer(df, input, output, budget, metadata, force, quiet)


def _header_frame(input: Path, sep: Optional[str]):
    """An empty frame with the header's column names, every column text (what ``_read_csv`` reads);
    the header line only (public), or a clean exit."""
    import pandas as pd

    from dpsynth.cli.common import fail
    from dpsynth.errors import DpsynthError
    from dpsynth.tabular.parsing import read_header

    try:
        names, _ = read_header(input, sep)
    except (DpsynthError, OSError) as exc:
        fail(str(exc))
    return pd.DataFrame({n: pd.Series([], dtype=object) for n in names})


def _run_infer(df, input, output, budget, metadata, force, quiet) -> None:
    """The DP pass of ``infer-metadata`` (after the source-budget charge) and the written release."""
    from dpsynth.card import build_card
    from dpsynth.cli.common import console, fail, print_warnings
    from dpsynth.errors import DpsynthError
    from dpsynth.release import OutputExistsError, write_release
    from dpsynth.tabular.infer import infer_metadata_dp, schema_to_yaml

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            schema, ledger, report = infer_metadata_dp(
                df, budget.epsilon, budget.delta, str(metadata) if metadata is not None else None,
                source_name=input.name,
            )
        except DpsynthError as exc:
            fail(str(exc))
    print_warnings(caught, quiet)
    ledger_name = output.name + ".ledger.json"
    text = schema_to_yaml(
        schema, f"Metadata of {input.name} released with differential privacy (epsilon={budget.epsilon:g}, "
                f"delta={budget.delta:g});\nits ledger is {ledger_name}. Compose it with the ledgers of later "
                "releases from the same data (dpsynth ledger compose).")
    card = build_card(ledger, generator_model={"family": "dpsynth.tabular", "method": "infer-metadata"},
                      extra={"tabular": {"columns": list(map(str, df.columns)), "public_domain": schema.to_dict()}})
    try:
        paths = write_release(output, lambda tmp: tmp.write_text(text, encoding="utf-8"), ledger, card, force=force)
    except (DpsynthError, OutputExistsError) as exc:
        fail(str(exc))
    if not quiet:
        _print_domain_report(report)
        console.print(f"Wrote {paths.data} with its ledger {paths.ledger} and card {paths.card} "
                      f"(epsilon spent {ledger.epsilon_spent:.4f}).", highlight=False)


def _print_domain_report(report: dict) -> None:
    """What the DP domain stage decided, kept and dropped (all DP outputs)."""
    from dpsynth.cli.common import console

    if not report:
        return
    console.print("Domain stage (DP outputs; change any of it by declaring the column in the metadata):", highlight=False)
    for name, rep in report.items():
        parts = [f"type {rep.get('type')}" + (" (DP type step)" if rep.get("type_source") == "dp" else "")]
        if rep.get("type_unreliable"):
            parts.append("type decided mostly by noise")
        if "lower" in rep:
            fmt = (lambda v: f"{v:g}") if isinstance(rep["lower"], (int, float)) else str
            parts.append(f"bounds [{fmt(rep['lower'])}, {fmt(rep['upper'])}]" + (" (mostly noise)" if rep.get("bounds_unreliable") else ""))
        if "kept" in rep:
            kept = rep["kept"]
            shown = ", ".join(kept[:8]) + (", ..." if len(kept) > 8 else "")
            parts.append(
                f"kept {len(kept)} value(s) [{shown}]; values with a noisy count under ~{rep.get('category_threshold', 0):.0f} "
                f"rows become {rep.get('other_label')!r}" if kept else f"COLLAPSED: every value becomes {rep.get('other_label')!r}"
            )
        console.print(f"  {name}: " + "; ".join(parts), highlight=False, soft_wrap=True)


@app.command()
def synth(
    ctx: typer.Context,
    input: Path = typer.Argument(..., help="Sensitive input table (CSV; with --backend stream|ray also Parquet or a directory of parts)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output path (.csv, .jsonl or .parquet); with --backend ray or --partitioned, a directory of part files of that name."),
    epsilon: float = typer.Option(..., "--epsilon", "-e", help="Privacy budget epsilon (> 0, finite)."),
    delta: float = typer.Option(DEFAULT_DELTA, "--delta", "-d", help="Privacy budget delta in (0, 1); public default 1e-6."),
    rows: Optional[int] = typer.Option(None, "--rows", "-n", help="Rows to generate (default: public or DP row count)."),
    method: str = typer.Option("auto", "--method", "-m", help="Method: auto, aim, mst, independent or dpsgd_vae."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Public metadata (JSON or YAML)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling rows from the fitted DP model (post-processing); privacy noise always uses OS entropy."),
    sep: Optional[str] = _sep_option(),
    max_time: Optional[float] = typer.Option(None, "--max-time", help="Cap on the method's fitting time in seconds (methods that support it)."),
    allow_degenerate: bool = typer.Option(False, "--allow-degenerate", help="Write the release even when DP outputs show columns with no information."),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="Charge this budget ledger file (default: INPUT's source budget, see `dpsynth budget`)."),
    no_source_budget: bool = typer.Option(False, "--no-source-budget", help="Run without a source budget: this call starts a fresh budget and nothing limits the total over several calls."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars, notes or warnings (errors and the final summary still print)."),
    target: Optional[str] = typer.Option(None, "--target", help="Column a model will predict (public): AIM weights its marginals, MST keeps it in the tree with its strongest partners."),
    workload: Optional[Path] = typer.Option(None, "--workload", help="JSON file with a list of marginals (lists of column names) for AIM's workload (public)."),
    backend: str = typer.Option("memory", "--backend", help="memory (default) | stream | ray: stream/ray read a CSV/Parquet file or directory through counts (marginal methods, complete metadata; docs/scale.md)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address for --backend ray (default: a local cluster)."),
    partitioned: bool = typer.Option(False, "--partitioned", help="--backend stream: write OUTPUT as a directory of part files (always so with --backend ray; docs/scale.md)."),
    part_rows: Optional[int] = typer.Option(None, "--part-rows", help="Rows per part file of a partitioned output (default 250000)."),
) -> None:
    """Fit a DP synthesizer on INPUT and write a synthetic table with its ledger and card.

    The run's whole budget is first charged to INPUT's source budget (``dpsynth budget init``) or
    ``--ledger``, before the input is read; see :func:`dpsynth.cli.budget.source_budget_charge`.
    """
    if backend != "memory":  # scale-out path: dpsynth/cli/tabular_backends.py
        from dpsynth.cli.tabular_backends import synth_with_backend

        return synth_with_backend(ctx, input=input, output=output, epsilon=epsilon, delta=delta, rows=rows, method=method,
                                  metadata=metadata, seed=seed, force=force, quiet=quiet, backend=backend,
                                  ray_address=ray_address, ledger_file=ledger_file, no_source_budget=no_source_budget,
                                  partitioned=partitioned, part_rows=part_rows, unsupported={"--sep": sep, "--max-time": max_time, "--allow-degenerate": allow_degenerate or None,
                                               "--target": target, "--workload": workload})
    from dpsynth.cli.budget import source_budget_charge
    from dpsynth.tabular.synthesize import PRIVACY_UNIT

    if partitioned or part_rows is not None:
        from dpsynth.cli.common import fail

        fail("--partitioned and --part-rows are for --backend stream (and always so with --backend ray): the in-memory "
             "backend writes one file")
    budget, synthesizer = _check_synth(ctx, input, output, epsilon, delta, rows, method, metadata, sep, max_time,
                                       target, workload, seed, force, quiet)
    source_step = ctx.with_resource(source_budget_charge(  # before the input is read; refused = nothing read
        input, budget=budget, release=output, ledger=ledger_file, no_source_budget=no_source_budget,
        privacy_unit=PRIVACY_UNIT))
    df = _read_csv(input, sep)
    _run_synth(df, synthesizer, input, output, budget, rows, allow_degenerate, force, quiet, source_step)


def _workload_options(target: Optional[str], workload: Optional[Path]) -> dict:
    """``--target`` / ``--workload`` as method options (public inputs, recorded in the ledger and
    card). Their column names are checked by the plan step (:meth:`Synthesizer.plan`) against the
    header's modelled columns, before any charge."""
    from dpsynth.cli.common import fail

    options: dict = {} if target is None else {"target": target}
    if workload is not None:
        try:
            options["workload"] = json.loads(workload.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(f"cannot read the workload file {workload}: {exc}")
        if not isinstance(options["workload"], list) or not all(isinstance(w, list) for w in options["workload"]):
            fail(f"the workload file {workload} must hold a JSON list of marginals (lists of column names)")
    return options


def _check_synth(ctx, input, output, epsilon, delta, rows, method, metadata, sep, max_time, target, workload, seed,
                 force, quiet):
    """Every check that needs only public inputs (arguments, the header, the metadata, the method
    and its options: :meth:`Synthesizer.plan`), and the output reservation: before any charge and
    before the input's rows are read. Returns ``(budget, synthesizer)``."""
    import pandas as pd

    from dpsynth.cli.common import (
        console, fail, parse_budget, require_input_file, reserve_output, warn_large_epsilon,
    )
    from dpsynth.errors import DpsynthError
    from dpsynth.release import check_rows_fit_memory
    from dpsynth.tabular.methods import get_method, resolve_method_name
    from dpsynth.tabular.parsing import read_header
    from dpsynth.tabular.schema import resolve_schema
    from dpsynth.tabular.synthesize import Synthesizer

    budget = parse_budget(epsilon, delta)
    if rows is not None and rows < 1:
        fail(f"--rows must be a positive integer, got {rows}")
    if max_time is not None and not (max_time > 0 and math.isfinite(max_time)):
        fail(f"--max-time must be a positive number of seconds, got {max_time}")
    require_input_file(input)
    if metadata is not None and not metadata.exists():
        fail(f"metadata file {metadata} does not exist")
    if output.suffix.lower() not in (".csv", ".jsonl", ".parquet"):
        fail(f"unsupported output format {output.suffix!r}; use .csv, .jsonl or .parquet")
    reserve_output(ctx, output, input, metadata, force=force)
    try:  # the header only (public), after the reservation: a refused racer never opens the input
        names, _ = read_header(input, sep)
        check_rows_fit_memory(rows, len(names), name="--rows")
    except (DpsynthError, OSError) as exc:
        fail(str(exc))
    if not quiet:
        warn_large_epsilon(budget.epsilon)
    header = pd.DataFrame({n: pd.Series([], dtype=object) for n in names})  # names only: every column is text
    method_options: dict = {}
    try:
        if max_time is not None:  # a clearer message than the method's own for this flag
            schema = resolve_schema(header, str(metadata) if metadata is not None else None)
            concrete = resolve_method_name(method, max(sum(1 for c in schema.columns if c.type != "id"), 1))
            method_options["max_time"] = float(max_time)
            try:
                get_method(concrete, **method_options)
            except (DpsynthError, ValueError) as exc:
                fail(f"--max-time is not supported by method {concrete!r} in this version ({exc})")
        method_options.update(_workload_options(target, workload))
        synthesizer = Synthesizer(
            epsilon=budget.epsilon, delta=budget.delta, method=method,
            metadata=str(metadata) if metadata is not None else None, seed=seed, progress=not quiet,
            source_name=input.name, method_options=method_options,
        )
        # the library's own plan step: schema, method and options, domain plan (public, nothing read)
        fit_plan = synthesizer.plan(header)
    except (DpsynthError, ValueError) as exc:
        fail(str(exc))
    if not quiet:
        n_modelled = sum(1 for c in fit_plan.schema.columns if c.type != "id")
        _print_estimate(n_modelled, fit_plan.method_name, method)
        _print_domain_plan(fit_plan)
        console.print(f"Fitting on {input.name} with epsilon={budget.epsilon:g}, delta={budget.delta:g}, "
                      f"method {fit_plan.method_name} ...", highlight=False)
    return budget, synthesizer


def _run_synth(df, synth, input, output, budget, rows, allow_degenerate, force, quiet, source_step) -> None:
    """Fit ``synth`` (planned by ``_check_synth``), check the DP outputs for degenerate columns,
    write the release, print the summary."""
    from dpsynth.cli.common import console, fail, print_warnings
    from dpsynth.errors import DpsynthError
    from dpsynth.release import OutputExistsError
    from dpsynth.tabular.diagnostics import DegenerateColumnWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            synth.fit(df)
            result = synth.sample(rows)
        except DpsynthError as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(f"bad input: {exc}")
    print_warnings(caught, quiet, skip=(DegenerateColumnWarning,))
    if not quiet and synth.domain_release_ is not None:
        _print_domain_report(synth.domain_release_.report)
    blocking = [i for i in result.issues if i.blocking]
    for issue in result.issues:
        if not issue.blocking and not quiet:
            console.print(f"[yellow]Warning:[/] {issue.message}. Fix: {issue.hint}", highlight=False, soft_wrap=True)
    if blocking:
        lines = "\n".join(f"  - {i.message}.\n    Fix: {i.hint}" for i in blocking)
        msg = (f"the release would carry no information in {len(blocking)} column(s) (found from DP outputs):\n{lines}\n"
               "Start from `dpsynth tabular metadata-template` and rerun with --metadata.")
        if not allow_degenerate:
            fail(msg + f"\nNothing was written (this run's DP steps used its budget epsilon={budget.epsilon:g}); "
                       "pass --allow-degenerate to write such a release anyway.")
        if not quiet:
            console.print(f"[yellow]Warning:[/] {msg}", highlight=False, soft_wrap=True)
    try:
        paths = result.save(output, force=force)
    except (DpsynthError, OutputExistsError) as exc:
        fail(str(exc))
    if source_step is not None:
        source_step.outputs = {"release": str(paths.data), "release_ledger_id": result.ledger.ledger_id}

    ledger = result.ledger
    console.print(f"Wrote {paths.data} ({len(result.data)} rows, method {result.method})", highlight=False)
    console.print(f"  ledger: {paths.ledger}", highlight=False)
    console.print(f"  card:   {paths.card}", highlight=False)
    console.print(
        f"Privacy spent: epsilon={ledger.epsilon_spent:.4f}, delta={ledger.delta_spent:.3g} "
        f"(budget epsilon={budget.epsilon:g}, delta={budget.delta:g}; privacy unit: one row)", highlight=False
    )
    for entry in ledger.charges():
        console.print(f"  - {entry['operation']}: epsilon={entry['charge']['epsilon']:.4f} ({entry['charge']['accountant']})",
                      highlight=False)
    _print_quality(df, result, synth)


def _print_domain_plan(fit_plan) -> None:
    """Before the fit, what the DP domain stage will cost and need (public: the fit's plan only)."""
    from dpsynth.cli.common import console

    plan, eps_d, epsilon = fit_plan.domain_plan, fit_plan.domain_budget[0], fit_plan.budget.epsilon
    if not plan.needed:
        return
    p = plan.parameters
    parts = [f"the metadata leaves {', '.join(s.name for s in plan.stages)} to a DP domain stage "
             f"(epsilon {eps_d:g} of {epsilon:g})"]
    if "threshold" in p.get("values", {}):
        parts.append(f"category values need a noisy count above ~{p['values']['threshold']:.0f} rows to be kept "
                     "(rarer values become '__other__'; list categories in the metadata to keep them)")
    console.print("Note: " + "; ".join(parts) + ".", highlight=False, soft_wrap=True)


def _print_estimate(n_modelled: int, concrete: str, requested: str) -> None:
    """A pre-start note for wide tables (public: column count and method)."""
    from dpsynth.cli.common import console

    if n_modelled <= WIDE_TABLE_COLUMNS and not (concrete == "aim" and n_modelled > 10):
        return
    triples = math.comb(n_modelled, 3)
    console.print(
        f"Note: {n_modelled} modelled columns; {concrete}"
        + (" (picked by auto)" if requested == "auto" else "")
        + f". AIM weighs up to {triples:,} three-column marginals and refits its model each round, so its time grows "
        "quickly with the column count (MST measures a tree of pairs); use --max-time to cap a long fit.",
        highlight=False,
        soft_wrap=True,
    )


def _print_quality(df, result, synth) -> None:
    """Per-column and average TVD against the input (NOT DP, console only, written nowhere)."""
    from dpsynth.cli.common import console
    from dpsynth.tabular.quality import per_column_tvd, tvd_summary

    assert synth.encoder_ is not None
    summary = tvd_summary(df, result.data, synth.encoder_, orders=(1, 2), max_marginals=200)
    parts = ", ".join(f"{k.replace('tvd_', '')} TVD {v:.3f}" for k, v in summary.items() if not math.isnan(v))
    console.print(
        f"Quality vs. your input on this release's public bins (the model's encoding), average total-variation "
        f"distance, lower is better: {parts}. [dim]Not DP: computed from the private input for you only; not stored. "
        "`dpsynth evaluate` bins columns its own way, so its figures differ.[/dim]",
        highlight=False, soft_wrap=True,
    )
    per_col = per_column_tvd(df, result.data, synth.encoder_)
    worst = sorted(per_col.items(), key=lambda kv: -kv[1])
    console.print("  per column (1-way TVD, not DP): " + ", ".join(f"{k} {v:.3f}" for k, v in worst), highlight=False,
                  soft_wrap=True)
