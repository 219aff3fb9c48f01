"""Atomic file writes: a temp file beside the target, fsync, rename. The lowest layer; imports nothing of dpsynth.

An interrupted write leaves either the old file or the new one, never a mix; the temp file of a
killed process is named ``.<name>.<random>.tmp`` and can be removed by :func:`remove_stale_temps`
once the caller holds the output's reservation (no live writer can own it then).
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

TEMP_SUFFIX = ".tmp"
#: ``tempfile.mkstemp`` inserts 8 characters from this set between prefix and suffix.
_MKSTEMP_RANDOM = r"[a-z0-9_]{8}"


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


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666`` less the process umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)  # no reader-free way elsewhere; restored at once
    os.umask(umask)
    return 0o666 & ~umask


def write_temp(path: str | Path, write: Callable[[Path], Any], mode: int | None = None) -> Path:
    """Call ``write(tmp_path)`` on a fresh temp file beside ``path`` and fsync it; return the temp path.

    The temp file is created readable by its owner only (``0o600``); ``mode`` (e.g.
    :func:`default_file_mode`) is applied before returning. The caller renames it into place
    (``os.replace``) or removes it. On any exception the temp file is removed and the exception re-raised.
    """
    tmp = temp_path_for(Path(path))
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    tmp = write_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temp files that an earlier, killed writer of ``path`` left (``.<name>.<8 random>.tmp``).

    Only the exact temp names :func:`temp_path_for` makes for ``path`` are touched (not the temps of
    another file whose name starts with ``<name>.``, such as ``<name>.eval.json``). Call only while holding
    the output's exclusive reservation, so that no live writer can own one of them.
    """
    path = Path(path)
    removed = []
    exact = re.compile(re.escape(f".{path.name}.") + _MKSTEMP_RANDOM + re.escape(TEMP_SUFFIX))
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*{TEMP_SUFFIX}")
    for name in sorted(glob.glob(pattern)):
        stale = Path(name)
        if exact.fullmatch(stale.name) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed
