"""A partitioned release: a directory of part files, its card and its ledger, written as one unit.

For ``out.parquet`` the release is the directory ``out.parquet/`` (``part-00000.parquet``, ...),
``out.parquet.card.yaml`` and ``out.parquet.ledger.json`` beside it (the naming rule of a
single-file release, :func:`dpsynth.release.release_paths`). The ledger's ``release`` entry holds a
**manifest** -- each part's relative name, byte size, row count and SHA-256 -- and binds it by
its SHA-256 (``data_sha256``), next to the card's SHA-256. ``dpsynth ledger verify`` fails when a
part is edited, swapped, deleted or renamed, or anything else appears in the directory
(:func:`dpsynth.accounting.verify.directory_problems`).

**Write order** (:func:`write_partitioned_release`), under the output's reservation
(:func:`dpsynth.release.reserve_release`: one writer per output, stale temps removed):

1. the parts are written into a hidden temp directory beside the output,
   ``.out.parquet.XXXXXXXX.parts`` (by this process or by Ray tasks), each fsynced, then the
   directory; the card and the ledger (with the ``release`` entry) go to fsynced temp files;
2. with ``force``, an existing ledger is unlinked -- from here on nothing verifies;
3. an existing ``out.parquet`` (file or directory) is renamed aside to ``.out.parquet.XXXXXXXX.old``;
4. the temp directory is renamed to ``out.parquet``; 5. the card; 6. the ledger -- **the commit point**;
7. the old data moved aside is removed.

A crash before (2) leaves the old release whole; between (2) and (6) there is no ledger, so
nothing verifies; after (6) the new release is whole. Whatever a killed writer left
(``.parts`` / ``.old`` folders, temp files) is removed by the next writer of that output.

Nothing here reads private data: the parts are synthetic (post-processing of a DP model).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from dpsynth.atomic import fsync_dir, fsync_file
from dpsynth.release import PARTS_TEMP_SUFFIX, ReleasePaths, write_release_unit

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.accounting.ledger import Ledger

__all__ = ["MANIFEST_SCHEMA", "describe_part", "manifest_of", "part_name", "write_partitioned_release"]

MANIFEST_SCHEMA = "dpsynth-parts/1"


def part_name(index: int, fmt: str) -> str:
    """The file name of part ``index`` (``part-00000.parquet``): sorted by name = in row order."""
    return f"part-{int(index):05d}.{fmt}"


def describe_part(path: str | Path, rows: int) -> dict[str, Any]:
    """One manifest row for the written part ``path`` (fsynced here): name, bytes, rows, SHA-256.

    Called where the part was written (this process, or a Ray task on the node that wrote it)."""
    from dpsynth.accounting.verify import file_sha256

    path = Path(path)
    fsync_file(path)
    return {"name": path.name, "bytes": path.stat().st_size, "rows": int(rows), "sha256": file_sha256(path)}


def manifest_of(parts: Sequence[dict[str, Any]], fmt: str) -> dict[str, Any]:
    """The manifest a ``release`` entry binds: the parts sorted by name, and their total rows."""
    ordered = sorted((dict(p) for p in parts), key=lambda p: p["name"])
    return {
        "schema": MANIFEST_SCHEMA,
        "format": str(fmt),
        "rows": sum(int(p["rows"]) for p in ordered),
        "parts": [{"name": str(p["name"]), "bytes": int(p["bytes"]), "rows": int(p["rows"]), "sha256": str(p["sha256"])}
                  for p in ordered],
    }


def _check_written(folder: Path, parts: Sequence[dict[str, Any]]) -> None:
    """The temp directory holds exactly the reported parts, with the reported sizes (a writer bug
    or a foreign file would otherwise be bound, or fail every later verify)."""
    on_disk = {p.name: p.stat().st_size for p in folder.iterdir()}
    reported = {p["name"]: p["bytes"] for p in parts}
    if on_disk != reported or len(reported) != len(parts):
        raise RuntimeError(
            f"internal: the parts written ({sorted(on_disk)}) are not the parts reported ({sorted(reported)})"
        )


def write_partitioned_release(
    data_path: str | Path,
    write_parts: Callable[[Path], Sequence[dict[str, Any]]],
    ledger: "Ledger",
    card: dict[str, Any],
    *,
    fmt: str,
    force: bool = False,
) -> ReleasePaths:
    """Write the directory ``data_path`` of part files, its card and ledger as one unit; return the paths.

    ``write_parts(folder)`` writes every part into the (empty, hidden) temp directory ``folder``
    and returns one :func:`describe_part` row per part. ``ledger`` is not changed: a copy gets a
    ``release`` entry with the manifest (:func:`manifest_of`) and the card's SHA-256. Order and
    crash behaviour: see the module docstring. Raises :class:`~dpsynth.release.ReleaseWriteError`
    ("nothing was released", temps removed) on an ``OSError`` while writing, and the reservation's
    errors (:class:`~dpsynth.release.OutputExistsError`, :class:`~dpsynth.release.OutputBusyError`).
    """
    from dpsynth.accounting.serialization import sha256_hex

    def parts_directory(paths: ReleasePaths, mode: int, temps: dict[str, Path]) -> tuple[str, dict[str, Any]]:
        folder = Path(tempfile.mkdtemp(prefix=f".{paths.data.name}.", suffix=PARTS_TEMP_SUFFIX,
                                       dir=paths.data.parent))
        temps["data"] = folder
        parts = list(write_parts(folder))
        _check_written(folder, parts)
        for item in folder.iterdir():
            os.chmod(item, mode)
        os.chmod(folder, mode | ((mode & 0o444) >> 2))  # a folder: searchable wherever it is readable
        fsync_dir(folder)
        manifest = manifest_of(parts, fmt)
        return sha256_hex(manifest), manifest

    return write_release_unit(data_path, parts_directory, ledger, card, force)
