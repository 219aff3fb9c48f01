"""Atomic file writes: a temp file beside the target, fsync, rename. The lowest layer; imports nothing of dpsynth.

An interrupted write leaves either the old file or the new one, never a mix; the temp file of a
killed process is named ``.<name>.<random>.tmp`` and can be removed by :func:`remove_stale_temps`
once the caller holds the output's reservation (no live writer can own it then).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

TEMP_SUFFIX = ".tmp"


def temp_path_for(path: Path) -> Path:
    """A fresh, empty temp file beside ``path`` (same folder, so the rename is atomic)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(tmp_name)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (best effort where the OS refuses to open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temp files that an earlier, killed writer of ``path`` left (``.<name>.*.tmp``).

    Call only while holding the output's exclusive reservation.
    """
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
