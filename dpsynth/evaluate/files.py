"""File-level workflows behind ``dpsynth evaluate`` and ``dpsynth mix``.

* :func:`evaluate_files` loads a released dataset (``X.csv`` or ``X.jsonl``), its ledger
  (``X.ledger.json``) and card (``X.card.yaml``), runs :func:`dpsynth.evaluate.evaluate`, writes
  the report as JSON (``X.eval.json``) and self-contained HTML (``X.eval.html``) and updates the
  card's ``evals``. The card travels with the data, so by default it gets only numbers computed
  from the synthetic data alone; every block computed from real records (and the release
  decision, which reads them) is withheld (:func:`~dpsynth.evaluate.card_summary.public_card_evals`)
  unless ``card_private_evals`` (``--card-private-evals``). Both report files are reserved for
  the whole run: a second run on them is refused. When the ledger binds its files (a ``release`` entry
  with their SHA-256), a new ``release`` entry binds the rewritten card (refused up front when the
  signing key here is not the ledger's). Outputs are never overwritten without ``force`` and the
  check happens before any work; every write is atomic (temp file + rename).
* :func:`mix_files` writes a hybrid of real and synthetic records. Its ledger (the synthetic
  ledger plus a ``real-records-included`` entry) and its card (``privacy.differentially_private:
  false``, ``synthetic_ratio``, the ``mix`` block with the rounded-ratio ``note``) say that the
  file is not a DP release: the real share has no protection.
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpsynth.accounting.fingerprint import fingerprint_bytes
from dpsynth.accounting.ledger import Ledger, LedgerSigningError
from dpsynth.atomic import atomic_write, atomic_write_text
from dpsynth.card import build_card, card_text, merge_card, read_card, write_card
from dpsynth.evaluate import contamination as contam
from dpsynth.evaluate import text_metrics as txt
from dpsynth.evaluate.api import EvaluationResult, card_evals, evaluate
from dpsynth.evaluate.card_summary import public_card_evals
from dpsynth.evaluate.decision import DecisionThresholds
from dpsynth.evaluate.io import EvaluationInputError, load_table, load_texts, looks_like_text, records_from_json
from dpsynth.evaluate.mix import mix_frames, mix_records, validate_ratio
from dpsynth.evaluate.report import render_html
from dpsynth.release import (
    OutputExistsError,
    OutputOverInputError,
    rebind_card,
    refuse_output_over_input,
    release_paths,
    remove_ledger_and_card,
    reserve_release,
    same_file,
    write_release,
)


@dataclass(frozen=True)
class EvaluationOutputs:
    """Where :func:`evaluate_files` wrote its outputs (``card`` is None when no card was written)."""

    json: Path
    html: Path
    card: Path | None


def default_output_paths(synthetic_path: str | Path) -> tuple[Path, Path]:
    """``X.eval.json`` and ``X.eval.html`` beside the synthetic data ``X``."""
    p = Path(synthetic_path)
    return p.with_name(p.name + ".eval.json"), p.with_name(p.name + ".eval.html")


def _check_writable(paths: list[Path], force: bool) -> None:
    for path in paths:
        if not path.parent.exists():
            raise FileNotFoundError(f"output folder {path.parent} does not exist")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise OutputExistsError(f"refusing to overwrite existing output(s): {', '.join(existing)} "
                                "(pass --force)")


def _refuse_reports_over_inputs(reports: list[Path], inputs: list[str | Path | None]) -> None:
    """Refuse (``force`` or not) report paths that would overwrite an input, its ledger or card, or each other.

    A report written over the holdout, the private data or the release's ledger would destroy what
    the user evaluates; ``--force`` only allows replacing earlier reports.
    """
    if same_file(reports[0], reports[1]):
        raise OutputOverInputError(f"--json-out and --html-out are the same file ({reports[0]}); give two paths")
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        for protected in (given,) + release_paths(given).all()[1:]:
            for report in reports:
                if same_file(report, protected):
                    raise OutputOverInputError(
                        f"refusing to write the report {report}: it is {protected}, which belongs to the input "
                        f"{given}. dpsynth never overwrites an input, even with --force; choose another path")


def _load_ledger(data_path: Path):
    path = release_paths(data_path).ledger
    return Ledger.load(path) if path.exists() else None


def _embedder(choice: str):
    if choice == "hashing":
        return txt.hashing_embedder(), "char-ngram-hashing"
    if choice == "minilm":
        return txt.minilm_embedder(), "all-MiniLM-L6-v2"
    if choice == "auto":
        return txt.default_embedder(prefer_minilm=True)
    raise ValueError(f"unknown embedder {choice!r} (auto, minilm, hashing)")


def evaluate_files(
    synthetic_path: str | Path,
    holdout_path: str | Path,
    private_path: str | Path | None = None,
    *,
    target: str | None = None,
    label_field: str | None = None,
    text_field: str | None = None,
    canaries_path: str | Path | None = None,
    benchmark_path: str | Path | None = None,
    json_path: str | Path | None = None,
    html_path: str | Path | None = None,
    update_card: bool = True,
    card_private_evals: bool = False,
    force: bool = False,
    embedder: str = "auto",
    ablation_ratio: float | None = None,
    thresholds: DecisionThresholds | None = None,
    run_sdmetrics: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> tuple[EvaluationResult, EvaluationOutputs]:
    """Evaluate a release on disk; see the module docstring for what is read and written."""
    synthetic_path = Path(synthetic_path)
    default_json, default_html = default_output_paths(synthetic_path)
    json_out, html_out = Path(json_path or default_json), Path(html_path or default_html)
    _refuse_reports_over_inputs([json_out, html_out],
                                [synthetic_path, holdout_path, private_path, canaries_path, benchmark_path])
    _check_writable([json_out, html_out], force)
    with ExitStack() as held:  # one writer per report: a second run is refused, not silently overwritten
        for report_path in (json_out, html_out):
            held.enter_context(reserve_release(report_path, force))
        is_text = text_field is not None or label_field is not None or looks_like_text(synthetic_path)
        if is_text and target:
            raise EvaluationInputError("--target is for tables; use --label-field for texts")
        if not is_text and label_field:
            raise EvaluationInputError("--label-field is for text corpora; use --target for tables")
        ledger = _load_ledger(synthetic_path)
        rebind = update_card and ledger is not None and ledger.last_release() is not None
        if rebind:
            _check_can_rebind(ledger, synthetic_path)  # before any work: refuse rather than break the binding

        if is_text:
            field = text_field or "text"
            synthetic, syn_labels = load_texts(synthetic_path, field, label_field)
            holdout, hold_labels = load_texts(holdout_path, field, label_field)
            private, priv_labels = (load_texts(private_path, field, label_field) if private_path else (None, None))
            benchmark = load_texts(benchmark_path, field)[0] if benchmark_path else None
            canaries = contam.load_canaries(canaries_path) if canaries_path else None
            embed_fn, embed_name = _embedder(embedder)
            result = evaluate(synthetic, holdout, private, synthetic_labels=syn_labels, holdout_labels=hold_labels,
                              private_labels=priv_labels, ledger=ledger, canaries=canaries, benchmark=benchmark,
                              thresholds=thresholds, embedder=embed_fn, embedder_name=embed_name, seed=seed,
                              progress=progress)
        else:
            synthetic_df, holdout_df = load_table(synthetic_path), load_table(holdout_path)
            private_df = load_table(private_path) if private_path else None
            benchmark_df = load_table(benchmark_path) if benchmark_path else None
            if canaries_path:
                raise EvaluationInputError("--canaries applies to text corpora only")
            result = evaluate(synthetic_df, holdout_df, private_df, target=target, ledger=ledger,
                              benchmark=benchmark_df, ablation_ratio=ablation_ratio, thresholds=thresholds,
                              run_sdmetrics=run_sdmetrics, seed=seed, progress=progress)

        atomic_write_text(json_out, result.to_json() + "\n")
        atomic_write_text(html_out, render_html(result.report, result.plots,
                                                title=f"dpsynth evaluation: {synthetic_path.name}"))
        card_path: Path | None = None
        if update_card:
            card_path = release_paths(synthetic_path).card

            decision = result.decision if card_private_evals else None  # the decision reads real data too

            def updated(previous: dict[str, Any] | None) -> dict[str, Any]:
                if previous is None:
                    card = build_card(ledger, evals=card_evals(result.report), release_decision=decision)
                else:
                    history = (((previous.get("evals") or {}).get("diversity_metrics") or {}).get("history")
                               if isinstance((previous.get("evals") or {}).get("diversity_metrics"), dict) else None)
                    card = merge_card(previous, evals=card_evals(result.report, history), release_decision=decision)
                if not card_private_evals:  # this run's blocks and any an earlier run or a user left: one rule
                    card["evals"] = public_card_evals(card.get("evals") or {})
                return card

            if ledger is not None:  # the ledger binds the card's hash: the new card gets a new release entry
                rebind_card(synthetic_path, updated)
            else:
                with reserve_release(synthetic_path, force=True):  # one writer of the card at a time
                    if card_path.exists():
                        write_card(card_path, updated(read_card(card_path)))
                    else:
                        card_path = None
        return result, EvaluationOutputs(json_out, html_out, card_path)


def _check_can_rebind(ledger: Ledger, data_path: Path) -> None:
    """Refuse (before anything is written) when this user cannot sign the ledger's new release entry."""
    try:
        ledger.copy().record_release(data_name=data_path.name, data_sha256="0" * 64, card_sha256="0" * 64)
    except LedgerSigningError as exc:
        raise EvaluationInputError(f"cannot update the card: {exc}; the ledger binds the card by its SHA-256, "
                                   "so only its key holder may change it (pass --no-card)") from exc


def mix_files(
    real_path: str | Path,
    synthetic_path: str | Path,
    ratio: float,
    out_path: str | Path,
    *,
    force: bool = False,
    seed: int | None = None,
    replace: bool = False,
) -> dict[str, Any]:
    """Write ``real + synthetic`` at synthetic share ``ratio`` to ``out_path`` with a card.

    Tables (CSV) and text corpora (``.jsonl``/``.json``/``.txt``) are supported; both inputs must
    be of the same kind. The synthetic ledger, when present, is copied beside the output (it
    covers the synthetic share only) and the card says so.
    """
    ratio = validate_ratio(ratio)
    real_path, synthetic_path, out_path = Path(real_path), Path(synthetic_path), Path(out_path)
    refuse_output_over_input(out_path, real_path, synthetic_path)
    with reserve_release(out_path, force):  # held until the files are written: one writer succeeds
        return _mix_reserved(real_path, synthetic_path, ratio, out_path, force=force, seed=seed, replace=replace)


def _mix_reserved(real_path: Path, synthetic_path: Path, ratio: float, out_path: Path, *, force: bool,
                  seed: int | None, replace: bool) -> dict[str, Any]:
    """:func:`mix_files` under the output's reservation."""
    paths = release_paths(out_path)
    text_mode = looks_like_text(synthetic_path)
    if text_mode != looks_like_text(real_path):
        raise EvaluationInputError("real and synthetic inputs must both be tables or both be text corpora")
    if text_mode:
        def read(path: Path) -> list[Any]:
            if path.suffix.lower() == ".txt":
                return load_texts(path)[0]
            records = records_from_json(path)
            if not records:
                raise EvaluationInputError(f"{path} contains no records")
            return records

        real, synthetic = read(real_path), read(synthetic_path)
        hybrid = mix_records(real, synthetic, ratio, seed=seed, replace=replace)
        n_real, n_total = len(real), len(hybrid)

        def write_data(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                for record in hybrid:
                    if out_path.suffix.lower() == ".txt":
                        line = record.get("text", "") if isinstance(record, dict) else str(record)
                        fh.write(" ".join(str(line).split()) + "\n")
                    else:
                        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        real_df, synthetic_df = load_table(real_path), load_table(synthetic_path)
        hybrid_df = mix_frames(real_df, synthetic_df, ratio, seed=seed, replace=replace)
        n_real, n_total = len(real_df), len(hybrid_df)

        def write_data(tmp: Path) -> None:
            hybrid_df.to_csv(tmp, index=False)

    n_synth = n_total - n_real
    mix_info = mix_summary(real_path, synthetic_path, ratio, n_real, n_synth)
    ledger = _load_ledger(synthetic_path)
    if ledger is not None:
        record_real_records(ledger, real_path, n_real)
        card = build_card(ledger, synthetic_ratio=mix_info["synthetic_ratio"],
                          source_real_data={"name": real_path.name, "included_verbatim": True},
                          release_decision=None, extra={"mix": mix_info})
        card["privacy"] = {**(card.get("privacy") or {}), **NOT_DP_PRIVACY_FIELDS, "real_records_included": n_real}
        write_release(out_path, write_data, ledger, card, force=force)
    else:
        card = {"schema": "dpsynth-card/1", "synthetic_ratio": mix_info["synthetic_ratio"],
                "source_real_data": {"name": real_path.name, "included_verbatim": True},
                "privacy": {**NOT_DP_PRIVACY_FIELDS, "real_records_included": n_real},
                "release_decision": None, "mix": mix_info,
                "evals": {"real_holdout": None, "temporal_holdout": None, "contamination_scan": None,
                          "diversity_metrics": None}}
        remove_ledger_and_card(paths)  # (force) an earlier release's ledger and card go first
        atomic_write(paths.data, write_data)
        atomic_write_text(paths.card, card_text(card))
    return {"data": paths.data, "card": paths.card, "ledger": paths.ledger if ledger is not None else None,
            **mix_info}


#: What a hybrid's card says in its ``privacy`` block: the file as a whole is not a DP release.
NOT_DP_PRIVACY_FIELDS = {
    "differentially_private": False,
    "contains_real_records": True,
    "scope": "the epsilon and delta above (if any) cover only the synthetic share; the real records are "
             "included verbatim and are not protected",
}


def mix_summary(real_path: Path, synthetic_path: Path, ratio: float, n_real: int, n_synth: int) -> dict[str, Any]:
    """The card's ``mix`` block: the realised synthetic share, counts, and (when the share had to be
    rounded to whole records) a ``note`` giving the requested and the realised ratio."""
    n_total = n_real + n_synth
    actual_ratio = n_synth / n_total if n_total else 0.0
    info: dict[str, Any] = {
        "synthetic_ratio": actual_ratio, "requested_ratio": ratio, "real_records": n_real,
        "synthetic_records": n_synth, "contains_real_records": True, "differentially_private": False,
        "privacy_scope": "the DP guarantee in the ledger covers only the synthetic share; the "
                         "real records are included verbatim and are NOT protected",
        "synthetic_source": synthetic_path.name, "real_source": real_path.name}
    if not math.isclose(actual_ratio, ratio, rel_tol=1e-12, abs_tol=1e-12):
        info["note"] = (f"ratio rounded to whole records: requested {ratio:.6g}, realised {actual_ratio:.6g} "
                        f"({n_synth} synthetic of {n_total})")
    return info


def record_real_records(ledger: Any, real_path: Path, n_real: int) -> dict[str, Any]:
    """Append the ``real-records-included`` entry to the hybrid's ledger (it is then not a DP release).

    The source fingerprint is the owner's salted keyed fingerprint of the real file's bytes, so the
    owner can re-check which data went in while two hybrids stay unlinkable. ``n_real`` is not DP,
    and needs not be: the hybrid holds those records verbatim.
    """
    return ledger.record_real_records(
        count=int(n_real),
        source_fingerprint=fingerprint_bytes(real_path.read_bytes()),
        note=f"dpsynth mix: {n_real} real records from {real_path.name} included verbatim; "
             "the file is not differentially private",
    )
