"""Writing a release: the synthetic data, its card and its ledger, as one unit, by one writer at a time.

For a dataset ``out.csv`` a release is three files: ``out.csv`` (the data), ``out.csv.card.yaml``
(the card) and ``out.csv.ledger.json`` (the ledger). The ledger's last ``release`` entry records the
SHA-256 of the data file and of the card, and it is signed with the rest of the ledger, so
``dpsynth ledger verify`` passes only for a data file and card that the ledger was written with.

**Reservation.** :func:`reserve_release` takes an exclusive, non-blocking lock on the output
(``.out.csv.lock`` beside it) *before* the caller reads or charges anything, then refuses an existing
output without ``force``, then removes temp files that a killed earlier writer left. A second
process asking for the same output gets :class:`OutputBusyError` at once. The lock is released on
every exit path (and by the OS when a process dies); the empty lock file stays, which is harmless.

**Write order** (:func:`write_release`): data, card and ledger are first written to temp files in
the same folder and fsynced; the ledger copy gets a ``release`` entry binding the hashes of the
*temp* data and card (a rename does not change bytes). Then, with ``force``, the old ledger is
unlinked; then data, then card, then the ledger are renamed into place. The ledger is the commit
point. Every crash point leaves one of: the old release untouched; no ledger at all (nothing
verifies); or the whole new release. A ledger never lands beside a data file or card it does not
bind, so no mix of old and new files can verify (see ``docs/releases.md`` and
``tests/test_release_crash.py``, which SIGKILLs a writer at every rename/unlink).

Nothing here reads private data: paths, file hashes of the released (DP) files, and public options.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from filelock import FileLock, Timeout

from dpsynth.atomic import (
    atomic_write,
    atomic_write_text,
    default_file_mode,
    fsync_dir,
    remove_stale_temps,
    write_temp,
)
from dpsynth.errors import DpsynthError

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.accounting.ledger import Ledger

__all__ = [
    "OutputBusyError",
    "OutputExistsError",
    "OutputFolderMissingError",
    "OutputOverInputError",
    "ReleaseBindingError",
    "ReleasePaths",
    "ReleaseReservation",
    "ReleaseWriteError",
    "RowsTooLargeError",
    "atomic_write",
    "atomic_write_text",
    "check_release_writable",
    "check_rows_fit_memory",
    "ledger_path_for",
    "lock_path_for",
    "rebind_card",
    "refuse_output_over_input",
    "release_paths",
    "remove_ledger_and_card",
    "remove_stale_part_dirs",
    "reserve_release",
    "same_file",
    "write_release",
    "write_release_unit",
]


class OutputExistsError(DpsynthError, FileExistsError):
    """An output file already exists and ``force`` was not given."""


class OutputBusyError(DpsynthError, FileExistsError):
    """Another run holds the reservation of this output (it is being written right now)."""


class OutputFolderMissingError(DpsynthError, FileNotFoundError):
    """The folder the output should go into does not exist."""


class OutputOverInputError(DpsynthError, ValueError):
    """The output (or its ledger or card) would overwrite an input file: refused even with ``force``."""


class ReleaseWriteError(DpsynthError, OSError):
    """Writing the release failed (disk full, permissions ...); no new release was put in place."""


class ReleaseBindingError(DpsynthError, ValueError):
    """A new card cannot be bound to a release (no ledger, or the files are not the ones it binds)."""


class RowsTooLargeError(DpsynthError, ValueError):
    """The requested number of rows cannot fit in the memory available for sampling."""


@dataclass(frozen=True)
class ReleasePaths:
    data: Path
    ledger: Path
    card: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.data, self.ledger, self.card)


@dataclass(frozen=True)
class ReleaseReservation:
    """The exclusive right to write one release (held inside ``with reserve_release(...)``)."""

    paths: ReleasePaths
    lock_path: Path
    force: bool


def release_paths(data_path: str | Path) -> ReleasePaths:
    """The data, ledger and card paths of a release."""
    data = Path(data_path)
    return ReleasePaths(data, data.with_name(data.name + ".ledger.json"), data.with_name(data.name + ".card.yaml"))


def remove_ledger_and_card(paths: ReleasePaths) -> None:
    """Delete the ledger and card beside ``paths.data`` (call it holding the reservation, before a
    non-DP output -- public-sample metadata, a hybrid mix -- replaces an earlier release with
    ``--force``): a crash afterwards must not leave a DP ledger or card beside data they do not
    describe."""
    for stale in (paths.ledger, paths.card):
        stale.unlink(missing_ok=True)


def ledger_path_for(path: str | Path) -> Path:
    """``path`` itself if it is a ledger, else the ledger that sits beside the dataset ``path``."""
    p = Path(path)
    if p.name.endswith(".ledger.json"):
        return p
    return release_paths(p).ledger


def lock_path_for(data_path: str | Path) -> Path:
    """The reservation lock file of the release ``data_path`` (``.<name>.lock`` beside it)."""
    p = Path(data_path)
    return p.with_name(f".{p.name}.lock")


def _check_folder(paths: ReleasePaths) -> None:
    folder = paths.data.parent
    if not folder.is_dir():
        raise OutputFolderMissingError(f"output folder {folder} does not exist")


def _check_not_existing(paths: ReleasePaths, force: bool) -> None:
    if force:
        return
    existing = [str(p) for p in paths.all() if p.exists() or p.is_symlink()]
    if existing:
        raise OutputExistsError(
            f"refusing to overwrite existing output(s): {', '.join(existing)} (pass force=True / --force)"
        )


def check_release_writable(data_path: str | Path, force: bool = False) -> ReleasePaths:
    """Refuse (before any work) when an output exists and ``force`` is false, or its folder is missing.

    A check only: it reserves nothing. Writers use :func:`reserve_release`.
    """
    paths = release_paths(data_path)
    _check_folder(paths)
    _check_not_existing(paths, force)
    return paths


@contextmanager
def reserve_release(data_path: str | Path, force: bool = False) -> Iterator[ReleaseReservation]:
    """Hold the exclusive reservation of the release ``data_path`` for the ``with`` block.

    In order: the output folder must exist (:class:`OutputFolderMissingError`); the lock
    ``.<name>.lock`` is taken without waiting (:class:`OutputBusyError` if another process holds it);
    an existing data file, ledger or card is refused unless ``force`` (:class:`OutputExistsError`);
    temp files left by a killed earlier writer of the three files are removed (safe: no live writer
    can own them while we hold the lock). Call it **before** reading or charging anything, so a
    refused run has spent nothing. Re-entrant within one thread (``write_release`` inside a CLI's
    reservation takes it again); another thread or process gets :class:`OutputBusyError`. Released
    on every exit path.
    """
    paths = release_paths(data_path)
    _check_folder(paths)
    lock_path = lock_path_for(paths.data)
    try:
        lock = FileLock(str(lock_path), timeout=0, is_singleton=True)
        lock.acquire()
    except Timeout:
        raise OutputBusyError(
            f"{paths.data} is being written by another dpsynth run right now (its reservation {lock_path.name} "
            "is held); nothing was read or spent. Wait for that run to finish or choose another output"
        ) from None
    except OSError as exc:
        raise ReleaseWriteError(
            f"cannot reserve {paths.data}: {exc.strerror or exc} ({lock_path}); nothing was read or spent"
        ) from exc
    try:
        _check_not_existing(paths, force)
        for path in paths.all():
            remove_stale_temps(path)
        remove_stale_part_dirs(paths.data)
        _remove_legacy_partials(paths.data)
        yield ReleaseReservation(paths, lock_path, force)
    finally:
        lock.release()


#: Suffixes of the hidden folders a partitioned release writes beside its output
#: (:mod:`dpsynth.release_parts`): the parts being written, and an old release moved aside.
PARTS_TEMP_SUFFIX = ".parts"
OLD_ASIDE_SUFFIX = ".old"


def remove_stale_part_dirs(data: Path) -> list[Path]:
    """Remove what a killed writer of the partitioned release ``data`` left beside it:
    ``.<name>.<8 random>.parts`` (parts being written) and ``.<name>.<8 random>.old`` (an old
    release moved aside). Exact names only; call only under the reservation."""
    import re
    import shutil

    data = Path(data)
    exact = re.compile(re.escape(f".{data.name}.") + r"[a-z0-9_]{8}(" + re.escape(PARTS_TEMP_SUFFIX) + "|"
                       + re.escape(OLD_ASIDE_SUFFIX) + ")")
    removed = []
    if not data.parent.is_dir():
        return removed
    for item in sorted(data.parent.iterdir()):
        if not exact.fullmatch(item.name):
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed.append(item)
    return removed


def _remove_legacy_partials(data: Path) -> None:
    """Temps of dpsynth versions before the reservation (``.out.csv.partial`` and its own temps)."""
    partial = data.with_name(f".{data.name}.partial")
    if partial.is_file() and not partial.is_symlink():
        partial.unlink(missing_ok=True)
    remove_stale_temps(partial)


def _snapshot(ledger: Any) -> "Ledger":
    """An in-memory copy of ``ledger`` to append the release entry to (the caller's stays unchanged)."""
    if hasattr(ledger, "copy"):
        return ledger.copy()
    return ledger.load()  # a LedgerFile: a verified snapshot of the file


def _remove_all(paths: Iterable[Path]) -> None:
    import shutil

    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - best effort while reporting the first error
            pass


def _aside_path(data: Path) -> Path:
    """A fresh hidden name beside ``data`` to move an old release's data to (``.<name>.<8 hex>.old``)."""
    import secrets

    while True:
        aside = data.with_name(f".{data.name}.{secrets.token_hex(4)}{OLD_ASIDE_SUFFIX}")
        if not (aside.exists() or aside.is_symlink()):
            return aside


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    return exc.strerror or str(exc) or type(exc).__name__


def _text_writer(text: str) -> Callable[[Path], None]:
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def _write_card_and_ledger(
    paths: ReleasePaths, ledger: "Ledger", card: Any, data_sha256: str, mode: int, temps: dict[str, Path],
    manifest: dict[str, Any] | None = None,
) -> None:
    """Write ``card``, then ``ledger`` with a ``release`` entry binding ``data_sha256`` (and, for a
    partitioned release, its ``manifest``) and the card's hash, as temporary files beside their
    targets (recorded in ``temps`` as they appear, so the caller removes them on failure and
    renames them on success)."""
    from dpsynth.accounting.verify import file_sha256
    from dpsynth.card import card_text

    temps["card"] = write_temp(paths.card, _text_writer(card_text(card)), mode)
    ledger.record_release(data_name=paths.data.name, data_sha256=data_sha256, card_sha256=file_sha256(temps["card"]),
                          manifest=manifest)
    temps["ledger"] = write_temp(paths.ledger, _text_writer(ledger.to_json()), mode)


def write_release(
    data_path: str | Path,
    write_data: Callable[[Path], Any],
    ledger: "Ledger",
    card: dict[str, Any],
    force: bool = False,
) -> ReleasePaths:
    """Write data, card and ledger as one unit under the output's reservation; return their paths.

    ``write_data(tmp_path)`` writes the data file. ``ledger`` is not changed: a copy gets a
    ``release`` entry with the SHA-256 of the data file and of the card, and that copy is written.
    ``card`` is built before the release entry exists, so its ``privacy.ledger_head_hash`` is the
    ledger head *before* the release entry (the entry binds the card, so the card cannot name it).

    Order: (1) the three files go to fsynced temp files; (2) with ``force``, an existing ledger is
    unlinked; (3) data, (4) card, (5) ledger are renamed into place. Crash after (1): old release
    untouched, temps removed by the next writer. After (2), (3) or (4): no ledger, so nothing
    verifies. After (5): the new release, whole. The ledger binds the hashes, so even a ledger that
    somehow sat beside other files would fail ``verify``.

    Raises :class:`ReleaseWriteError` ("nothing was released", temps removed) when writing fails
    with an ``OSError`` (disk full, permissions), :class:`OutputExistsError` without ``force``,
    :class:`OutputBusyError` when another process is writing the same output.
    """
    from dpsynth.accounting.verify import file_sha256

    def data_file(paths: ReleasePaths, mode: int, temps: dict[str, Path]) -> tuple[str, None]:
        temps["data"] = write_temp(paths.data, write_data, mode)
        return file_sha256(temps["data"]), None

    return write_release_unit(data_path, data_file, ledger, card, force)


#: Writes a release's data as a temp beside ``paths.data`` (recorded in ``temps["data"]`` as soon as
#: it exists) with the given file mode; returns the ``data_sha256`` to bind and the manifest (or None).
DataWriter = Callable[[ReleasePaths, int, "dict[str, Path]"], "tuple[str, dict[str, Any] | None]"]


def write_release_unit(
    data_path: str | Path, write_data: DataWriter, ledger: "Ledger", card: dict[str, Any], force: bool
) -> ReleasePaths:
    """The one write path of every release (a file, or a directory of parts): under the output's
    reservation, ``write_data`` writes the data temp, then card and ledger temps follow with the
    ``release`` entry, then :func:`_commit` renames data, card and ledger (last: the commit point).
    An ``OSError`` becomes :class:`ReleaseWriteError` with every temp removed."""
    with reserve_release(data_path, force) as reservation:
        paths = reservation.paths
        bound = _snapshot(ledger)
        mode = default_file_mode()  # a release is meant to be shared: the permissions of any new file
        temps: dict[str, Path] = {}
        try:
            data_sha256, manifest = write_data(paths, mode, temps)
            _write_card_and_ledger(paths, bound, card, data_sha256, mode, temps, manifest=manifest)
        except OSError as exc:
            _remove_all(temps.values())
            raise ReleaseWriteError(
                f"could not write the release {paths.data}: {_describe(exc)}; nothing was released "
                "(any earlier release there is untouched)"
            ) from exc
        except BaseException:
            _remove_all(temps.values())
            raise
        _commit(paths, [("data", paths.data), ("card", paths.card), ("ledger", paths.ledger)], temps,
                unlink_old_ledger=True,
                broke_off="No ledger is in place, so nothing there verifies as a release; run again with "
                          "--force / force=True")
    return paths


def _commit(
    paths: ReleasePaths,
    order: list[tuple[str, Path]],
    temps: dict[str, Path],
    *,
    unlink_old_ledger: bool,
    broke_off: str,
) -> None:
    """Rename ``temps`` into place in ``order``, each rename made durable before the next.

    ``broke_off`` ends the error message when a rename fails after something was changed.
    """
    folder = paths.data.parent
    changed = False
    aside: Path | None = None
    try:
        if unlink_old_ledger and (paths.ledger.exists() or paths.ledger.is_symlink()):
            os.unlink(paths.ledger)  # from here until the new ledger lands, nothing verifies
            changed = True
            fsync_dir(folder)
        for key, target in order:
            exists = target.exists() or target.is_symlink()
            if key == "data" and exists and (temps[key].is_dir() or (target.is_dir() and not target.is_symlink())):
                aside = _aside_path(target)  # a rename cannot replace a folder (or a file by one): move it aside
                os.replace(target, aside)
                changed = True
                fsync_dir(folder)
            os.replace(temps[key], target)
            del temps[key]
            changed = True
            fsync_dir(folder)  # each rename durable before the next: the order survives a power cut
        if aside is not None:  # after the commit point; a crash before this leaves it to the next run
            _remove_all([aside])
    except OSError as exc:
        _remove_all(temps.values())
        if not changed:
            raise ReleaseWriteError(
                f"could not write the release {paths.data}: {_describe(exc)}; nothing was changed "
                "(any earlier release there is untouched)"
            ) from exc
        raise ReleaseWriteError(f"writing the release {paths.data} broke off: {_describe(exc)}. {broke_off}") from exc


def rebind_card(
    data_path: str | Path,
    card: dict[str, Any] | Callable[[dict[str, Any] | None], dict[str, Any]],
) -> ReleasePaths:
    """Replace the card of an existing release and bind it in the ledger (e.g. after ``dpsynth evaluate``).

    Under the output's reservation: the ledger beside ``data_path`` is loaded and verified; the data
    file must be the one its last ``release`` entry binds, and an existing card one that a
    ``release`` entry of this data binds (else :class:`ReleaseBindingError`: a swapped or edited
    file is never re-bound). ``card`` is the new card, or a function from the current card
    (``None`` when there is none) to the new one, called under the reservation. A ``release`` entry
    with the same data hash and the new card's hash is appended -- this needs the key that signs the
    ledger (the data owner's key) -- then the ledger and, last, the card are renamed into place.

    A crash between the two renames leaves the old card beside the new ledger: ``verify`` fails on
    the card hash (no mixed state passes), and the next rebind recovers, because the old card is
    one the ledger bound earlier. (Card first would leave a card no entry binds: unrecoverable.)
    """
    from dpsynth.accounting.ledger import OWNER, Ledger, LedgerSigningError
    from dpsynth.accounting.verify import file_sha256
    from dpsynth.card import read_card

    with reserve_release(data_path, force=True) as reservation:
        paths = reservation.paths
        if not paths.ledger.exists():
            raise ReleaseBindingError(f"{paths.ledger} does not exist: there is no release to bind a card to")
        ledger = Ledger.load(paths.ledger, signer=OWNER)
        last = ledger.last_release()
        if last is None:
            raise ReleaseBindingError(
                f"{paths.ledger} binds no data file (written before releases were bound); write the release again"
            )
        if not _data_is_bound(paths.data, last):
            raise ReleaseBindingError(
                f"{paths.data} is not the data file its ledger was written with; refusing to bind a card to it"
            )
        current = None
        if paths.card.exists():
            bound_cards = {
                e["card_sha256"]
                for e in ledger.entries
                if e["kind"] == "release" and e["data_sha256"] == last["data_sha256"]
            }
            if file_sha256(paths.card) not in bound_cards:
                raise ReleaseBindingError(
                    f"{paths.card} is not a card its ledger was written with (edited outside dpsynth); refusing "
                    "to bind a card derived from it"
                )
            current = read_card(paths.card)
        new_card = card(current) if callable(card) else card
        mode = default_file_mode()
        temps: dict[str, Path] = {}
        try:
            _write_card_and_ledger(paths, ledger, new_card, last["data_sha256"], mode, temps,
                                   manifest=last.get("manifest"))
        except LedgerSigningError as exc:
            _remove_all(temps.values())
            raise ReleaseBindingError(
                f"cannot bind a new card to {paths.data}: {exc}. The release is unchanged (leave its card "
                "alone: dpsynth evaluate --no-card / update_card=False)"
            ) from exc
        except OSError as exc:
            _remove_all(temps.values())
            raise ReleaseWriteError(
                f"could not write the card of {paths.data}: {_describe(exc)}; the release is unchanged"
            ) from exc
        except BaseException:
            _remove_all(temps.values())
            raise
        _commit(paths, [("ledger", paths.ledger), ("card", paths.card)], temps, unlink_old_ledger=False,
                broke_off="The ledger binds a card that is not in place, so the release does not verify; "
                          "run the same step (dpsynth evaluate / rebind_card) again")
    return paths


def _data_is_bound(data: Path, entry: dict[str, Any]) -> bool:
    """Whether ``data`` (a file, or the directory of a partitioned release) is what ``entry`` binds."""
    from dpsynth.accounting.verify import directory_problems, file_sha256

    if "manifest" in entry or data.is_dir():
        return not directory_problems(data, entry)
    return data.is_file() and file_sha256(data) == entry["data_sha256"]


# ---------------------------------------------------------------------------------------------- inputs
def same_file(a: Path, b: Path) -> bool:
    """Same path after resolving symlinks, or the same file on disk (hard links, case-insensitive file systems)."""
    try:
        if a.resolve() == b.resolve():
            return True
    except OSError:  # pragma: no cover - e.g. a symlink loop
        pass
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:  # pragma: no cover
        return False


def refuse_output_over_input(output: str | Path, *inputs: str | Path | None) -> None:
    """Refuse (always, ``force`` or not) when writing the release ``output`` would overwrite an input.

    Written files are the data file, its ledger and its card; protected files are each input and,
    when an input is itself a release, its ledger and card. Same path after resolving symlinks, or
    the same file on disk (hard links, case-insensitive file systems), counts as the same.
    """
    written = release_paths(output).all()
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        protected = (given,) + release_paths(given).all()[1:]
        for target in written:
            for source in protected:
                if same_file(target, source):
                    what = "is" if source == given else f"is {source.name}, which belongs to"
                    raise OutputOverInputError(
                        f"refusing to write {target}: it {what} the input {given}. dpsynth never overwrites an "
                        "input, even with --force / force=True; choose another output path"
                    )


# ---------------------------------------------------------------------------------------------- memory
#: Bytes per cell assumed for sampling a table (integer codes, the decoded frame, and temporaries).
#: Measured: the CLI's peak RSS grew by 31.6 bytes per cell from 1,000 to 2,000,000 rows of a
#: 4-column table (independent method). A request above the available memory at this rate cannot
#: fit; one below may still fail (wide string columns or other methods need more).
BYTES_PER_CELL = 32


def available_memory_bytes() -> int | None:
    """Memory this process can still use: ``MemAvailable`` (Linux), capped by a cgroup v2 limit; else
    free physical pages; ``None`` when the platform does not say."""
    available: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            available = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            room = max(0, int(limit) - int(used))
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def check_rows_fit_memory(
    rows: int | None, n_columns: int, *, name: str = "rows", available: int | None = None
) -> None:
    """Refuse a row count whose sampled table cannot fit in memory, before anything is fitted.

    ``rows`` and ``n_columns`` are public (an argument and the schema); ``available`` defaults to
    :func:`available_memory_bytes`. ``name`` is how the caller spells the option (``--rows`` in the CLI).
    No check when ``rows`` is ``None`` or the platform does not report its memory.
    """
    if rows is None:
        return
    if available is None:
        available = available_memory_bytes()
    if available is None:
        return
    columns = max(1, int(n_columns))
    needed = int(rows) * columns * BYTES_PER_CELL
    if needed > available:
        most = max(0, available // (columns * BYTES_PER_CELL))
        raise RowsTooLargeError(
            f"{name}={int(rows):,} rows x {columns} columns needs at least {_gib(needed)} of memory to sample, "
            f"but about {_gib(available)} is available; ask for at most {most:,} rows (refused before fitting)"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
