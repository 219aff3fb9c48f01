"""Writing a release: the synthetic data, its ledger and its card, atomically and without overwriting.

For a dataset ``out.csv`` the release is three files: ``out.csv``, ``out.csv.ledger.json`` and
``out.csv.card.yaml`` (same for ``.jsonl`` / ``.parquet``). Each is written to a temporary file in
the same directory and renamed into place, so an interrupted run never leaves a half-written file.
Existing files are never overwritten unless ``force=True``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.accounting.ledger import Ledger


class OutputExistsError(FileExistsError):
    """An output file already exists and ``force`` was not given."""


@dataclass(frozen=True)
class ReleasePaths:
    data: Path
    ledger: Path
    card: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.data, self.ledger, self.card)


def release_paths(data_path: str | Path) -> ReleasePaths:
    """The data, ledger and card paths of a release."""
    data = Path(data_path)
    return ReleasePaths(data, data.with_name(data.name + ".ledger.json"), data.with_name(data.name + ".card.yaml"))


def ledger_path_for(path: str | Path) -> Path:
    """``path`` itself if it is a ledger, else the ledger that sits beside the dataset ``path``."""
    p = Path(path)
    if p.name.endswith(".ledger.json"):
        return p
    return release_paths(p).ledger


def check_release_writable(data_path: str | Path, force: bool = False) -> ReleasePaths:
    """Refuse (before any work) when an output exists and ``force`` is false, or its folder is missing."""
    paths = release_paths(data_path)
    if not paths.data.parent.exists():
        raise FileNotFoundError(f"output folder {paths.data.parent} does not exist")
    if not force:
        existing = [str(p) for p in paths.all() if p.exists()]
        if existing:
            raise OutputExistsError(
                f"refusing to overwrite existing output(s): {', '.join(existing)} (pass force=True / --force)"
            )
    return paths


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_release(
    data_path: str | Path,
    write_data: Callable[[Path], Any],
    ledger: "Ledger",
    card: dict[str, Any],
    force: bool = False,
) -> ReleasePaths:
    """Write data, ledger and card atomically. The data is written last-but-one and the ledger
    before the card, so a reader never sees data without its ledger for longer than a rename."""
    from dpsynth.card import card_text

    import hashlib

    paths = check_release_writable(data_path, force)
    data_tmp = paths.data.with_name(f".{paths.data.name}.partial")
    # write the data to a temp file first (slowest step), bind data and card in the ledger, rename data last
    try:
        atomic_write(data_tmp, write_data)
        text = card_text(card)
        bound = ledger.copy()
        bound.record_release(
            data_name=paths.data.name,
            data_sha256=hashlib.sha256(data_tmp.read_bytes()).hexdigest(),
            card_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
        atomic_write_text(paths.ledger, bound.to_json())
        atomic_write_text(paths.card, text)
        os.replace(data_tmp, paths.data)
    finally:
        data_tmp.unlink(missing_ok=True)
    return paths
