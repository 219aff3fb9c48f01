"""The result of one DP text call: synthetic texts, labels, the ledger, and how to save them.

Privacy: everything here is the released output (post-processing of the DP mechanism) plus
public parameters; :meth:`TextSynthesisResult.save` writes no private data.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpsynth.accounting import Ledger
from dpsynth.errors import DpsynthError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)


class OutputFormatError(DpsynthError, ValueError):
    """The output path has a suffix dpsynth cannot write texts as."""


def output_format(path: str | Path) -> str:
    """``"csv"`` or ``"jsonl"`` from the output suffix; anything else is refused."""
    suffix = Path(path).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise OutputFormatError(
        f"cannot write synthetic texts to {Path(path).name!r}: use a .jsonl (JSON lines) or .csv output"
    )


@dataclass
class TextSynthesisResult:
    """Synthetic texts (and labels) from one DP call, with the ledger that records their cost."""

    texts: list[str]
    labels: list[str] | None
    ledger: Ledger
    plan: Any
    generator_model: dict[str, Any]
    decoding: dict[str, Any] = field(default_factory=dict)
    method: str = "private_prediction"

    def records(self) -> list[dict[str, str]]:
        """One ``{"text": ...}`` (plus ``"label"``) dict per synthetic text."""
        if self.labels is None:
            return [{"text": t} for t in self.texts]
        return [{"text": t, "label": lab} for t, lab in zip(self.texts, self.labels)]

    def card(self) -> dict[str, Any]:
        """The dataset card of this release (privacy block derived from the ledger)."""
        from dpsynth.card import build_card

        return build_card(
            self.ledger,
            generator_model=self.generator_model,
            filters=[],
            extra={"text_generation": {"method": self.method, **self.decoding, "privacy": self.plan.describe()}},
        )

    def save(self, path: str | Path, force: bool = False):
        """Write ``path`` (JSONL for .jsonl/.ndjson/.json, CSV for .csv), ``path.ledger.json`` and
        ``path.card.yaml`` atomically. Refuses other suffixes, and existing files unless ``force``.
        Returns the release paths."""
        from dpsynth.release import write_release

        kind = output_format(path)
        records = self.records()
        columns = ["text"] if self.labels is None else ["text", "label"]

        def write_data(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                if kind == "csv":
                    writer = csv.DictWriter(fh, fieldnames=columns)
                    writer.writeheader()
                    writer.writerows(records)
                else:
                    for record in records:
                        fh.write(json.dumps(record, ensure_ascii=False) + "\n")

        return write_release(path, write_data, self.ledger, self.card(), force=force)
