"""``dpsynth text synth``: DP synthetic texts from a JSONL or CSV file.

Writes ``OUT`` -- JSON lines for ``.jsonl`` (one ``{"text": ...}`` object per line, plus
``"label"`` when labelled) or CSV for ``.csv`` (columns ``text`` [, ``label``]); other suffixes
are refused -- plus ``OUT.ledger.json`` and ``OUT.card.yaml``.  Privacy unit: one input text
(record); the release is (epsilon, delta)-DP under adding or removing one record (see
``docs/text.md``).  Before generating, the CLI prints the method and its public parameters
(``B``, ``T``, ``C`` for private prediction; iterations and sigma for PE), having checked every
public argument and loaded the model (and PE's embedder) -- all before INPUT's source budget is
charged, so a bad flag costs nothing; only reading INPUT, generating and saving run after the
charge. An empty INPUT is an empty data set and runs like any other.
``--backend ray [--ray-workers N] [--ray-address ADDR]`` decodes private prediction's groups on
Ray actors, or PE's public candidates (:mod:`dpsynth.text.ray_backend`; connected before the charge).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from dpsynth.cli.common import console, fail, parse_budget
from dpsynth.constants import DEFAULT_DELTA
from dpsynth.errors import DpsynthError

app = typer.Typer(help="DP synthetic text by private LLM inference.", no_args_is_help=True)

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
CSV_SUFFIXES = {".csv"}


class InputFormatError(DpsynthError, ValueError):
    """The input file cannot be read as the expected records."""


# The readers run after the source budget is charged, on private data. Their messages keep the
# path and the names of the fields the user passed (public) and nothing else: no line numbers,
# no other field or column names, no values, no parser detail (docs/text.md, "What errors show").
# An empty file -- or a CSV with its header only -- is an empty data set, read like any other.


def _field_value(value: object, field: str, path: Path) -> str:
    if value is None:
        raise InputFormatError(f"{path}: a record's field {field!r} is null")
    if isinstance(value, (dict, list)):
        raise InputFormatError(f"{path}: a record's field {field!r} is not a string")
    return value if isinstance(value, str) else str(value)


def read_jsonl_records(path: Path, text_field: str, label_field: str | None) -> tuple[list[str], list[str] | None]:
    """Texts (and labels) from a JSON-lines file (blank lines skipped; none at all is zero records)."""
    texts: list[str] = []
    labels: list[str] | None = [] if label_field else None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InputFormatError(f"{path}: a line is not valid JSON") from None
            if not isinstance(record, dict):
                raise InputFormatError(f"{path}: a line is not a JSON object")
            for field in [text_field] + ([label_field] if label_field else []):
                if field not in record:
                    raise InputFormatError(f"{path}: a record has no field {field!r}")
            texts.append(_field_value(record[text_field], text_field, path))
            if labels is not None and label_field:
                labels.append(_field_value(record[label_field], label_field, path))
    return texts, labels


def read_csv_records(path: Path, text_field: str, label_field: str | None) -> tuple[list[str], list[str] | None]:
    """Texts (and labels) from a CSV file with a header row (header only, or an empty file: zero records)."""
    texts: list[str] = []
    labels: list[str] | None = [] if label_field else None
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, strict=True)
            header = reader.fieldnames
            if header is None:  # an empty file: no header, no record
                return texts, labels
            for field in [text_field] + ([label_field] if label_field else []):
                if field not in header:
                    raise InputFormatError(f"{path}: the header has no column {field!r}")
            for row in reader:
                if None in row:
                    raise InputFormatError(f"{path}: a row has more fields than the header")
                texts.append(_field_value(row[text_field], text_field, path))
                if labels is not None and label_field:
                    labels.append(_field_value(row[label_field], label_field, path))
    except csv.Error:
        raise InputFormatError(f"{path}: malformed CSV (strict quoting)") from None
    except UnicodeDecodeError:
        raise InputFormatError(f"{path}: not UTF-8 text") from None
    return texts, labels


def check_input_format(path: Path) -> str:
    """``"jsonl"`` or ``"csv"`` from INPUT's suffix, refused before the charge (the name is public)."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise InputFormatError(f"{path}: unsupported input format {suffix or '(no suffix)'!r}; use .jsonl or .csv")


def read_text_records(path: Path, text_field: str, label_field: str | None) -> tuple[list[str], list[str] | None]:
    """Dispatch on the file suffix (.jsonl/.ndjson/.json or .csv)."""
    kind = check_input_format(path)
    try:
        if kind == "jsonl":
            return read_jsonl_records(path, text_field, label_field)
        return read_csv_records(path, text_field, label_field)
    except UnicodeDecodeError:
        raise InputFormatError(f"{path}: not UTF-8 text") from None


def _require_input_path(path: Path) -> None:
    """INPUT exists and is a file (public: the path). Its size is not checked: an empty file is an
    empty data set, and refusing it before the charge would tell it apart from a one-record file."""
    if not path.exists():
        fail(f"input file {path} does not exist")
    if path.is_dir():
        fail(f"input {path} is a directory, not a file")
    if not path.is_file() or not os.access(path, os.R_OK):  # file metadata only: nothing read
        fail(f"input {path} is not a readable regular file")
    try:
        check_input_format(path)
    except InputFormatError as exc:
        fail(str(exc))


def default_instruction(text_field: str, label_set: list[str] | None) -> str:
    """A public instruction built from the field name and the declared label set (issue 9).

    ``review_text`` -> "Write one realistic review text, like one record of a data set of review
    texts." plus, when labelled, the label set. Used when ``--instruction`` is not given.
    """
    words = " ".join(text_field.replace("_", " ").replace("-", " ").split()) or "text"
    instruction = f"Write one realistic {words}, like one record of a data set of {words} entries."
    if label_set:
        instruction += f" Each record has one of the labels: {', '.join(label_set)}."
    return instruction


def _parse_group_size(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        size = int(value)
    except ValueError:
        fail(f"--group-size must be 'auto' or a positive integer, got {value!r}")
    if size < 1:
        fail(f"--group-size must be 'auto' or a positive integer, got {value!r}")
    return size


def _parse_label_set(labels: str | None) -> list[str] | None:
    if labels is None:
        return None
    values = [v.strip() for v in labels.split(",") if v.strip()]
    if not values:
        fail("--labels is empty")
    return values


BACKENDS = ("memory", "ray")


def _parse_vote_space(value: str | None) -> str | None:
    """``--vote-space`` checked from the flag alone (nothing read or spent)."""
    if value is None:
        return None
    from dpsynth.text.pe.histogram import check_vote_space

    try:
        return check_vote_space(value)
    except ValueError as exc:
        fail(f"--vote-space: {exc}")


def _parse_variation_kinds(value: str | None) -> list[str] | None:
    """``--variation-kinds`` as a list, refused from the flag alone (nothing read or spent)."""
    if value is None:
        return None
    from dpsynth.text.pe.variation import check_variation_kinds

    kinds = [k.strip() for k in value.split(",") if k.strip()]
    try:
        return list(check_variation_kinds(tuple(kinds)))
    except ValueError as exc:
        fail(f"--variation-kinds: {exc}")


def _check_backend_flags(backend: str, ray_workers: int, ray_address: str | None) -> None:
    """Refuse a bad ``--backend``/``--ray-*`` combination from the flags alone (nothing read or spent)."""
    if backend not in BACKENDS:
        fail(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "ray":
        given = [flag for flag, value in (("--ray-address", ray_address), ("--ray-workers", ray_workers)) if value is not None]
        if given:
            fail(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} only used with --backend ray")
        return
    if ray_workers is not None and ray_workers < 1:
        fail(f"--ray-workers must be a positive integer, got {ray_workers}")
    from dpsynth.ray_support import RayUnavailableError, require_ray

    try:
        require_ray()
    except RayUnavailableError as exc:
        fail(str(exc))  # fail() escapes: rich would otherwise swallow the "[ray]" of the extra's name


@contextmanager
def ray_session(address: str | None, workers: int, device: str | None = None) -> Iterator[Any]:
    """Connect to Ray (``address``, or a new local cluster) before the charge; shut down only a
    connection this command opened. Refuses, before anything is spent, an unreachable address and
    a cluster with fewer CPUs (or, with ``--device cuda``, GPUs) than ``workers``: each decode
    actor takes one CPU (and one GPU); its actors would otherwise wait forever."""
    from dpsynth.ray_support import RayConnectError, RayResourcesError
    from dpsynth.text.ray_backend import check_ray_request

    import ray as ray_module

    started = not ray_module.is_initialized()
    try:
        try:
            check_ray_request("ray", "private_prediction", workers, address, device)
        except (RayConnectError, RayResourcesError, ValueError) as exc:
            fail(f"--backend ray: {exc}")
        yield ray_module
    finally:
        if started and ray_module.is_initialized():
            ray_module.shutdown()


def _read_run_and_save(prepared: Any, input_path: Path, text_field: str, label_field: str | None, output: Path,
                       force: bool, progress: bool) -> tuple:
    """Read the records, run the prepared call, save the release (inside the source charge)."""
    from dpsynth.release import OutputExistsError

    try:
        texts, text_labels = read_text_records(input_path, text_field, label_field)
    except (InputFormatError, OSError) as exc:
        fail(str(exc))
    try:
        result = prepared.run(texts, text_labels, source_name=input_path.name, progress=progress)
    except (DpsynthError, ValueError, TypeError) as exc:
        fail(str(exc))
    try:
        paths = result.save(output, force=force)
    except (DpsynthError, OutputExistsError, FileNotFoundError) as exc:  # ReleaseWriteError is a DpsynthError
        fail(str(exc))
    return result, paths


def print_plan(summary: dict[str, Any]) -> None:
    """The method and its public parameters (:meth:`dpsynth.text.synthesis.GenerationPlan.summary`)."""
    if summary["method"] == "pe":
        console.print(
            f"Method: pe (Private Evolution), iterations={summary['iterations']}, "
            f"variations={summary['variations']}, vote space={summary['vote_space']}, "
            f"noise sigma={summary['noise_multiplier']:.4g}, threshold={summary['threshold']:.4g}, "
            f"T={summary['max_new_tokens']}",
            highlight=False,
        )
    else:
        console.print(
            f"Method: private_prediction, B={summary['group_size']} ({summary['group_size_rule']}), "
            f"T={summary['max_new_tokens']}, C={summary['clip']:.4g}; each synthetic text draws on one group: "
            f"about len(texts)/B synthetic texts (per label) see a full group",
            highlight=False,
        )


@app.command("synth")
def synth(
    ctx: typer.Context,
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Private texts: .jsonl (one object per line) or .csv."),
    text_field: str = typer.Option(..., "--text-field", help="Field/column holding the text."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Output .jsonl or .csv (ledger and card are written beside it)."
    ),
    epsilon: float = typer.Option(..., "--epsilon", help="Privacy budget epsilon of this release."),
    delta: float = typer.Option(DEFAULT_DELTA, "--delta", help="Privacy budget delta (0 < delta < 1)."),
    label_field: Optional[str] = typer.Option(None, "--label-field", help="Field/column holding a label."),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="PUBLIC label set, comma-separated (required with --label-field)."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Local model folder, .gguf file or cached hub id."),
    method: str = typer.Option(
        "auto", "--method", help="pe (Private Evolution), private_prediction, or auto (pe; see docs/text.md)."
    ),
    group_size: str = typer.Option("auto", "--group-size", help="private_prediction's B: 'auto' or an integer."),
    iterations: Optional[int] = typer.Option(
        None, "--iterations", help="pe: number of noisy vote rounds (public; default 6 on a CPU, 10 on a GPU, 3 when the budget is too small for those: docs/text.md)."
    ),
    variations: Optional[int] = typer.Option(
        None, "--variations", help="pe: variations written per kept candidate (default 3, or 4 with the GPU schedule)."
    ),
    variation_kinds: Optional[str] = typer.Option(
        None, "--variation-kinds",
        help="pe: comma-separated variation prompts cycled per kept candidate: paraphrase, fill_in, example "
        "(default paraphrase,fill_in).",
    ),
    vote_space: Optional[str] = typer.Option(
        None, "--vote-space",
        help="pe: where a private text's nearest candidate is measured: centred (default; cosine after removing the "
        "candidates' mean) or raw (plain cosine).",
    ),
    embedder: Optional[str] = typer.Option(
        None, "--embedder", help="pe: sentence-transformers folder (default: offline all-MiniLM-L6-v2)."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="T: maximum tokens per synthetic text."),
    num_texts: int = typer.Option(10, "--num-texts", help="Synthetic texts to generate (per label when labelled)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    top_k: Optional[int] = typer.Option(
        None, "--top-k",
        help="Sampling set size, 0 = whole vocabulary. Default: 50 for private_prediction (Top-k+ set from "
        "public logits), 200 for pe (the public model's candidate pool).",
    ),
    instruction: Optional[str] = typer.Option(
        None, "--instruction",
        help="Public task description, e.g. 'Write one short movie review.' (default: built from --text-field and --labels).",
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Non-private choices only (decoding order)."),
    device: Optional[str] = typer.Option(None, "--device", help="torch device (default: cuda if available)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing output files."),
    ledger_path: Optional[Path] = typer.Option(
        None, "--ledger", help="Charge this budget ledger file (default: INPUT's source budget, see `dpsynth budget`)."
    ),
    no_source_budget: bool = typer.Option(
        False, "--no-source-budget",
        help="Run without a source budget: this call starts a fresh budget and nothing limits the total over several calls.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backend: str = typer.Option(
        "memory", "--backend",
        help="memory (default) | ray: private_prediction's groups, or pe's public candidates, are decoded on Ray actors, one model replica each (docs/scale.md).",
    ),
    ray_workers: Optional[int] = typer.Option(
        None, "--ray-workers", help="--backend ray: number of decode actors (model replicas), one CPU each, and one GPU each with --device cuda (default 2)."
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="--backend ray: Ray cluster address, e.g. auto or ray://HOST:10001 (default: a local cluster)."
    ),
) -> None:
    """Generate DP synthetic texts; writes OUT, OUT.ledger.json and OUT.card.yaml."""
    from dpsynth.cli.budget import source_budget_charge
    from dpsynth.release import refuse_output_over_input, reserve_release
    from dpsynth.text.privacy import PRIVACY_UNIT
    from dpsynth.text.result import output_format
    from dpsynth.text.synthesis import prepare_generation

    budget = parse_budget(epsilon, delta)
    if label_field and labels is None:
        fail("--label-field needs --labels a,b,c: the label set is public metadata and is never read from the data")
    if labels is not None and not label_field:
        fail("--labels was given without --label-field")
    label_set = _parse_label_set(labels)
    size = _parse_group_size(group_size)
    kinds = _parse_variation_kinds(variation_kinds)
    space = _parse_vote_space(vote_space)
    _check_backend_flags(backend, ray_workers, ray_address)
    try:  # the reservation is held until this command returns (typer closes ctx on every exit path)
        output_format(output)
        refuse_output_over_input(output, input_path)
        ctx.with_resource(reserve_release(output, force))
    except DpsynthError as exc:
        fail(str(exc))
    _require_input_path(input_path)
    if instruction is None:
        instruction = default_instruction(text_field, label_set)
    ray_options: dict = {}
    if backend == "ray":
        workers = 2 if ray_workers is None else ray_workers
        ctx.with_resource(ray_session(ray_address, workers, device))  # connected before the charge
        ray_options = dict(backend="ray", ray_workers=workers, ray_address=ray_address)
        console.print(f"Backend: ray, {workers} decode workers"
                      + (", one GPU each" if device and device.startswith("cuda") else ""), highlight=False)
    # every public argument is checked, the method planned, the model and embedder loaded: before
    # the source budget is charged, so a bad flag costs nothing
    try:
        prepared = prepare_generation(
            epsilon=budget.epsilon, delta=budget.delta, label_set=label_set, num_texts=num_texts, method=method,
            model=model, instruction=instruction, group_size=size, max_new_tokens=max_new_tokens,
            temperature=temperature, top_k=top_k, iterations=iterations, variations=variations,
            variation_kinds=kinds, vote_space=space, embedder=embedder, seed=seed, device=device, **ray_options,
        )
    except (DpsynthError, ValueError, TypeError, OSError) as exc:
        fail(str(exc))
    print_plan(prepared.summary())
    console.print(f"Instruction: {instruction}", highlight=False)
    with source_budget_charge(
        input_path, budget=budget, release=output, ledger=ledger_path, no_source_budget=no_source_budget,
        privacy_unit=PRIVACY_UNIT,
    ) as source_step:  # before the input is read; refused = nothing read
        result, paths = _read_run_and_save(prepared, input_path, text_field, label_field, output, force, not quiet)
        if source_step is not None:
            source_step.outputs = {"release": str(paths.data), "release_ledger_id": result.ledger.ledger_id}
    ledger = result.ledger
    console.print(
        f"Privacy spent: epsilon={ledger.epsilon_spent:.6g}, delta={ledger.delta_spent:.3g} "
        f"(unit: one text; add-or-remove-one; budget epsilon={budget.epsilon:g}, delta={budget.delta:g})",
        highlight=False,
    )
    console.print(
        f"Wrote {len(result.texts)} synthetic texts to {paths.data}\n  ledger: {paths.ledger}\n  card:   {paths.card}",
        highlight=False,
    )
