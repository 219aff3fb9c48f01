"""The private table seen only through exact counts over the public encoded domain.

Privacy unit: one row. Nothing here is DP on its own: every object below answers *exact* count
queries (marginals over attribute subsets; ``counts(())`` is the row count) and must stay inside
the library. Noise is added once, in the driver, by the mechanism that asked (``_pgm.measure``,
the independent method, the DP row count), from :mod:`dpsynth.randomness`. Because every backend
returns the same exact counts, the mechanisms, their noise and their ledger entries are the same
whichever backend computed the counts.

Three implementations of :class:`PrivateCounts`:

* :class:`InMemoryCounts` -- a numpy code array (the in-process default);
* :class:`StreamingCounts` -- CSV / Parquet files read in chunks with pyarrow and encoded chunk by
  chunk with the public :class:`~dpsynth.tabular.encoding.TableEncoder`; memory is bounded by the
  chunk and by the count tables asked for, not by the row count;
* :class:`RayCounts` -- the same files as Ray Data blocks (CSV files, Parquet row groups); every
  block is read, encoded and counted by a Ray worker and the count tables are summed in the driver.

Count queries are answered from a cache. :meth:`prefetch` computes many cliques in one pass over
the data; a clique not in the cache costs one more pass. Before any charge the backends only
:meth:`~_CachedCounts.plan` the method's workload (public: names and sizes): nothing is read until
the first charged stage asks for a count, and that first pass then counts the whole planned
workload at once.

**Nothing read from a data row reaches a message.** Before the charge only the header line (CSV)
or the schema (Parquet) is read. A data row the reader cannot parse (wrong field count, bad
quoting, bytes that are not UTF-8) fails the pass with a fixed message naming the file only --
never the reader's own text, which quotes the row -- like the in-memory CLI's reader; it happens
inside the charged stage, whose charge stays (recorded as failed).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from dpsynth.errors import DpsynthError
from dpsynth.ray_support import RayUnavailableError, ensure_ray, require_ray  # noqa: F401 - re-exported
from dpsynth.tabular.encoding import ColumnEncoder, TableEncoder

Clique = tuple[str, ...]

#: The strings pandas' ``read_csv`` reads as missing; the streaming readers use the same list so
#: that every backend sees the same missing values.
PANDAS_NA_VALUES = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)
DEFAULT_CHUNK_ROWS = 250_000


class TableSourceError(DpsynthError, ValueError):
    """The input path is not a readable CSV / Parquet file or directory of such files."""


@runtime_checkable
class PrivateCounts(Protocol):
    """Exact counts of a private table over its public encoded domain (never released as is)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The encoded column names (public)."""
        ...

    @property
    def sizes(self) -> tuple[int, ...]:
        """Codes per column (public)."""
        ...

    @property
    def num_columns(self) -> int:
        ...

    def counts(self, attrs: Sequence[str]) -> np.ndarray:
        """Exact count vector of ``attrs`` (flattened, C order, float64); ``()`` gives ``[rows]``."""
        ...


def count_codes(codes: np.ndarray, columns: Sequence[str], sizes: Sequence[int], clique: Sequence[str]) -> np.ndarray:
    """Exact count vector (flattened, C order) of ``clique`` over an int code array."""
    idx = [list(columns).index(c) for c in clique]
    if not idx:
        return np.array([float(codes.shape[0])])
    shape = tuple(int(sizes[i]) for i in idx)
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)


class _CachedCounts:
    """Shared cache logic: subclasses implement :meth:`_compute` (one pass for many cliques)."""

    def __init__(self, columns: Sequence[str], sizes: Sequence[int]) -> None:
        self._columns = tuple(columns)
        self._sizes = tuple(int(s) for s in sizes)
        self._cache: dict[Clique, np.ndarray] = {}
        self._planned: list[Clique] = []  # counted with the first clique asked for (one pass)
        self.passes = 0  # full passes over the private data so far (for tests and benchmarks)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def sizes(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def num_columns(self) -> int:
        return len(self._columns)

    def _check(self, clique: Sequence[str]) -> Clique:
        clique = tuple(str(c) for c in clique)
        unknown = [c for c in clique if c not in self._columns]
        if unknown:
            raise KeyError(f"unknown column(s) {unknown}")
        if len(set(clique)) != len(clique):
            raise ValueError(f"repeated column in {clique}")
        return clique

    def counts(self, attrs: Sequence[str]) -> np.ndarray:
        clique = self._check(attrs)
        if clique not in self._cache:
            self.prefetch([clique, *self._planned])
        return self._cache[clique].copy()

    def plan(self, cliques: Iterable[Sequence[str]]) -> None:
        """Count ``cliques`` in the pass that answers the next uncached query; reads nothing now.

        The backends call this before any charge (public: the method's workload), so the data is
        first read inside a charged stage, and the whole workload still costs one pass.
        """
        for c in cliques:
            c = self._check(c)
            if c not in self._planned:
                self._planned.append(c)

    def prefetch(self, cliques: Iterable[Sequence[str]]) -> None:
        """Compute every clique not yet cached in one pass (the row count is always included)."""
        todo = {self._check(c) for c in cliques} | {()}
        todo = sorted(c for c in todo if c not in self._cache)
        if not todo:
            return
        self._cache.update(self._compute(todo))
        self.passes += 1

    @property
    def rows(self) -> int:
        """The exact row count (private; use only inside a charged mechanism)."""
        return int(self.counts(())[0])

    def _compute(self, cliques: list[Clique]) -> dict[Clique, np.ndarray]:  # pragma: no cover
        raise NotImplementedError


class InMemoryCounts(_CachedCounts):
    """Counts over an in-memory int code array of shape ``(n, d)`` (today's representation)."""

    def __init__(self, codes: np.ndarray, columns: Sequence[str], sizes: Sequence[int]) -> None:
        super().__init__(columns, sizes)
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self._columns):
            raise ValueError(f"codes must have shape (n, {len(self._columns)}), got {codes.shape}")
        self._codes = codes

    def _compute(self, cliques: list[Clique]) -> dict[Clique, np.ndarray]:
        return {c: count_codes(self._codes, self._columns, self._sizes, c) for c in cliques}


# ------------------------------------------------------------------------------ files and chunks
@dataclass(frozen=True)
class TableSource:
    """A CSV or Parquet file, or a directory of part files of one format (sorted by name).

    Hive-style folder names below a directory input (``DIR/year=2020/part-0.parquet``) are
    partition columns, as with pyarrow's ``partitioning="hive"``: ``partition_keys`` are their
    names (appended to the files' header, in folder order) and ``partition_values[i]`` the values
    of ``paths[i]`` -- always **text** (URI-decoded; ``__HIVE_DEFAULT_PARTITION__`` is missing),
    parsed by the public encoder like a CSV value: no type is inferred from the folder names, the
    metadata declares the column like any other.
    """

    paths: tuple[Path, ...]
    format: str  # "csv" | "parquet"
    root: Path | None = None
    partition_keys: tuple[str, ...] = ()
    partition_values: tuple[tuple[str | None, ...], ...] = ()

    @classmethod
    def from_path(cls, path: str | Path | Sequence[str | Path]) -> "TableSource":
        if isinstance(path, (list, tuple)):
            files = [Path(p) for p in path]
        else:
            p = Path(path)
            if not p.exists():
                raise TableSourceError(f"input {p} does not exist")
            if p.is_dir():
                files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (".csv", ".parquet")
                               and not f.name.startswith((".", "_")))
                if not files:
                    raise TableSourceError(f"directory {p} holds no .csv or .parquet files")
            else:
                files = [p]
        formats = {f.suffix.lower().lstrip(".") for f in files}
        if len(formats) != 1 or not formats <= {"csv", "parquet"}:
            raise TableSourceError(
                f"input must be .csv or .parquet files of one format, got {sorted(formats)}"
            )
        for f in files:
            if not f.is_file() or f.stat().st_size == 0:
                raise TableSourceError(f"input file {shown_path(f)} is missing or empty")
        fmt = formats.pop()
        if isinstance(path, (list, tuple)) or not Path(path).is_dir():
            return cls(tuple(files), fmt)
        root = Path(path)
        keys, values = hive_partitions(root, files)
        return cls(tuple(files), fmt, root, keys, values)

    def partition_of(self, index: int) -> dict[str, str | None]:
        """The hive partition columns of ``paths[index]`` (empty without key=value folders)."""
        if not self.partition_keys:
            return {}
        return dict(zip(self.partition_keys, self.partition_values[index]))

    def column_names(self) -> tuple[str, ...]:
        """The header (public schema): CSV header line or Parquet schema; all parts must agree."""
        names: tuple[str, ...] | None = None
        for f in self.paths:
            these = _file_columns(f, self.format)
            if names is None:
                names = these
            elif these != names:
                raise TableSourceError(f"{shown_path(f)} has columns {list(these)}, unlike the first part's {list(names)}")
        assert names is not None
        clash = [k for k in self.partition_keys if k in names]
        if clash:
            raise TableSourceError(f"the partition column(s) {', '.join(clash)} of the key=value folder names are "
                                   "also columns in the files")
        names = names + self.partition_keys
        if len(set(names)) != len(names):
            raise TableSourceError("duplicate column names in the input header")
        return names

    def fingerprint(self, source_key: bytes | None = None, *, salt: bytes | None = None) -> str:
        """Salted keyed fingerprint of the input, in the format of
        :mod:`dpsynth.accounting.fingerprint`: ``hmac-sha256-salted:<salt hex>:<mac hex>`` with a
        fresh random salt per call (``salt`` only to re-check one), so two releases from the same
        data carry unlinkable values.

        One file: the MAC of the salt and the file's bytes, exactly
        :func:`~dpsynth.accounting.fingerprint.fingerprint_bytes` of the file (so ``dpsynth ledger
        verify --source FILE`` matches it), computed block by block. Several parts: the salt, then
        each part's folder below the root (hive inputs: the folder names hold values), name, size and
        bytes. Read it only inside a charged stage (it reads every byte of the input).
        """
        from dpsynth.accounting.fingerprint import FINGERPRINT_SCHEME, SALT_BYTES, load_source_key

        salt = secrets.token_bytes(SALT_BYTES) if salt is None else bytes(salt)
        mac = hmac.new(load_source_key(source_key), digestmod=hashlib.sha256)
        mac.update(salt)
        single = len(self.paths) == 1 and not self.partition_keys
        for f in self.paths:
            if not single:
                if self.partition_keys and self.root is not None:  # the folder names hold column values
                    mac.update(f.parent.relative_to(self.root).as_posix().encode() + b"\0")
                mac.update(f.name.encode() + f.stat().st_size.to_bytes(8, "big"))
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    mac.update(block)
        return f"{FINGERPRINT_SCHEME}:{salt.hex()}:{mac.hexdigest()}"

    def matches(self, fingerprint: str, source_key: bytes | None = None) -> bool:
        """True when ``fingerprint`` is this input's under the owner's key (its recorded salt)."""
        from dpsynth.accounting.fingerprint import salt_of

        salt = salt_of(str(fingerprint))
        return salt is not None and hmac.compare_digest(str(fingerprint), self.fingerprint(source_key, salt=salt))


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def shown_path(path: str | Path) -> str:
    """``path`` for a message, with every ``key=value`` folder shown as ``key=...``: below a hive
    input those folder names hold column values (private), so no message names one."""
    parts = Path(path).parts
    return str(Path(*[f"{seg.split('=', 1)[0]}=..." if "=" in seg and i < len(parts) - 1 else seg
                      for i, seg in enumerate(parts)])) if parts else str(path)


def hive_partitions(root: Path, files: Sequence[Path]) -> tuple[tuple[str, ...], tuple[tuple[str | None, ...], ...]]:
    """Partition keys and each file's values from its ``key=value`` folder names below ``root``.

    Decoded by pyarrow's hive partitioning with every key typed as text (URI-decoded values;
    ``__HIVE_DEFAULT_PARTITION__`` is missing); folders without ``=`` are ignored, as pyarrow does.
    Every file must sit under the same keys in the same order. Errors name keys (column names,
    public), never a folder's value; a value that is not UTF-8 once URL-decoded is missing.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    layouts = []
    for f in files:
        segments = f.parent.relative_to(root).parts
        layouts.append(tuple(seg.split("=", 1)[0] for seg in segments if "=" in seg))
    keys = layouts[0] if layouts else ()
    if any(layout != keys for layout in layouts):
        raise TableSourceError(
            f"the parts under {root} sit under different key=value folder names (partition columns "
            f"{sorted(set(layouts))}); every part must have the same partition columns in the same order"
        )
    if not keys:
        return (), ()
    if len(set(keys)) != len(keys) or any(not k for k in keys):
        raise TableSourceError(f"the key=value folder names under {root} repeat or omit a partition column: {list(keys)}")
    partitioning = ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
    values = []
    for f in files:
        relative = f.parent.relative_to(root).as_posix() + "/"
        try:  # a name that is not text at all (raw bytes) cannot be read or fingerprinted as a path
            relative.encode("utf-8")
        except UnicodeEncodeError:
            raise TableSourceError(
                f"a folder name under {root} is not UTF-8 text; dpsynth reads only UTF-8 file and folder names "
                "(no name is shown: below a key=value input, names are data)"
            ) from None
        try:
            parsed = ds.get_partition_keys(partitioning.parse(relative))
        except pa.ArrowException:  # a value that is not UTF-8 once URL-decoded
            parsed = _parse_each_key(relative, keys)
        values.append(tuple(None if parsed.get(k) in (None, HIVE_NULL) else str(parsed[k]) for k in keys))
    return keys, tuple(values)


def _parse_each_key(relative: str, keys: Sequence[str]) -> dict[str, str | None]:
    """The partition values of one part's folders, key by key; a value that cannot be decoded is
    missing, as a CSV value the encoder cannot parse is. Never refused and never quoted: the folder
    names hold data, and whether a run stops must not depend on one of them."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    out: dict[str, str | None] = {}
    for segment in relative.strip("/").split("/"):
        key, sep, _ = segment.partition("=")
        if not sep or key not in keys:
            continue
        one = ds.partitioning(pa.schema([(key, pa.string())]), flavor="hive")
        try:
            out.update(ds.get_partition_keys(one.parse(segment + "/")))
        except pa.ArrowException:
            out[key] = None
    return out


#: The delimiter of CSV parts on the stream and ray backends (pyarrow's reader).
CSV_DELIMITER = ","


def _file_columns(path: Path, fmt: str) -> tuple[str, ...]:
    """One part's column names: the CSV header line only (the in-memory path's header reader), or
    the Parquet schema (file metadata). No data row is read; errors carry no reader text."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return tuple(str(n) for n in pq.read_schema(path).names if not str(n).startswith("__index_level_"))
        except Exception:  # noqa: BLE001 - any reader failure is a clear input error, with no reader text
            raise TableSourceError(f"cannot read the Parquet schema of {shown_path(path)}: not a readable Parquet file") from None
    from dpsynth.tabular.parsing import CsvFormatError, read_header

    try:
        names, _ = read_header(path, CSV_DELIMITER)
    except CsvFormatError as exc:  # header line only (public)
        note = " (the stream and ray backends read comma-separated files)" if "--sep" in str(exc) else ""
        raise TableSourceError(str(exc).replace(str(path), shown_path(path)) + note) from None
    except OSError as exc:
        raise TableSourceError(f"cannot read {shown_path(path)}: {exc.strerror or type(exc).__name__}") from None
    return tuple(names)


def unreadable_part(path: Path, fmt: str) -> TableSourceError:
    """The error for a part whose data rows cannot be read: the file name and a fixed reason only
    (the reader's text quotes the offending row), as the in-memory CLI's reader does."""
    what = ("a row does not match the header (field count or quoting) or the text is not UTF-8"
            if fmt == "csv" else "it is not a readable Parquet file or its columns do not match the metadata")
    return TableSourceError(f"cannot read {shown_path(path)}: {what}. No detail is shown: it would describe private rows")


def csv_convert_options(encoder: TableEncoder, names: Sequence[str], exclude: Iterable[str] = ()):
    """pyarrow CSV conversion fixed in advance, never inferred from the data: every column is read
    as text and parsed by the public encoder (numbers, booleans, dates, categories; a value it
    cannot parse is missing, as in memory); pandas' missing-value strings are missing everywhere.
    ``exclude``: modelled columns that are not in the file (hive partition columns)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    skip = set(exclude)
    modelled = [e.spec.name for e in encoder.encoders if e.spec.name not in skip]
    names = [n for n in names if n not in skip]
    types = {name: pa.string() for name in names}
    return pacsv.ConvertOptions(
        column_types=types,
        include_columns=list(modelled),
        null_values=list(PANDAS_NA_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def iter_frames(source: TableSource, encoder: TableEncoder, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The modelled columns of ``source`` as pandas chunks of at most ~``chunk_rows`` rows."""
    names = source.column_names()
    for index, path in enumerate(source.paths):
        yield from iter_part_frames(path, source.format, encoder, names, chunk_rows,
                                    partition=source.partition_of(index))


def iter_part_frames(path: Path, fmt: str, encoder: TableEncoder, names: Sequence[str], chunk_rows: int,
                     row_groups: Sequence[int] | None = None,
                     partition: dict[str, str | None] | None = None) -> Iterator[pd.DataFrame]:
    """One file (or some of a Parquet file's row groups) as pandas chunks of the modelled columns;
    ``partition``: the file's hive partition columns, added as text (one value per file)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    partition = partition or {}
    wanted = [c for c in encoder.columns if c not in partition]
    try:
        if fmt == "parquet":
            batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=wanted, row_groups=row_groups)
        else:
            block = max(1 << 20, min(1 << 26, chunk_rows * 16 * max(len(names), 1)))
            batches = pacsv.open_csv(
                path,
                # the names are the header line's (read_header): the reader skips that line
                read_options=pacsv.ReadOptions(block_size=block, skip_rows=1,
                                               column_names=[n for n in names if n not in partition]),
                parse_options=pacsv.ParseOptions(delimiter=CSV_DELIMITER),
                convert_options=csv_convert_options(encoder, names, exclude=partition),
            )
        for batch in batches:
            if batch.num_rows:
                frame = pa.Table.from_batches([batch]).to_pandas()
                for key, value in partition.items():
                    if key in encoder.columns:
                        frame[key] = pd.Series([value] * len(frame), index=frame.index, dtype=object)
                yield frame
    except (pa.ArrowException, OSError, UnicodeError, ValueError):
        raise unreadable_part(path, fmt) from None  # never the reader's text: it quotes the row


def source_parts(source: TableSource, row_groups_per_part: int = 1) -> list[tuple[str, list[int] | None]]:
    """The units of parallel work: each CSV file, each (group of) Parquet row group(s)."""
    import pyarrow.parquet as pq

    parts: list[tuple[str, list[int] | None]] = []
    for path in source.paths:
        if source.format == "parquet":
            n = pq.ParquetFile(path).metadata.num_row_groups
            for start in range(0, n, row_groups_per_part):
                parts.append((str(path), list(range(start, min(n, start + row_groups_per_part)))))
        else:
            parts.append((str(path), None))
    return parts


# --------------------------------------------------------------------------------- chunk encoding
def encode_frame(encoder: TableEncoder, df: pd.DataFrame) -> np.ndarray:
    """Codes for one chunk; the same codes as ``encoder.encode`` (tested), faster on text columns.

    Categorical and boolean columns are encoded once per distinct value of the chunk (their
    encoding is value by value); should that fail, the column is encoded by the library's own
    encoder.
    """
    if not encoder.encoders:
        return np.zeros((len(df), 0), dtype=np.int64)
    return np.stack([_encode_column(e, df[e.spec.name]) for e in encoder.encoders], axis=1)


def _encode_column(e: ColumnEncoder, series: pd.Series) -> np.ndarray:
    if e.spec.type not in ("categorical", "boolean"):
        return e.encode(series)
    try:
        inverse, uniques = pd.factorize(series, use_na_sentinel=True)
        unique_codes = e.encode(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
        if (inverse < 0).any():
            unique_codes = np.append(unique_codes, e.missing_code)
        return unique_codes[inverse].astype(np.int64)
    except (ValueError, TypeError):
        return e.encode(series)  # raises the library's exact error (or agrees with it)


def count_frame(encoder: TableEncoder, df: pd.DataFrame, cliques: Sequence[Clique]) -> dict[Clique, np.ndarray]:
    """Exact count vectors of ``cliques`` over one chunk."""
    codes = encode_frame(encoder, df)
    return {c: count_codes(codes, encoder.columns, encoder.sizes, c) for c in cliques}


class StreamingCounts(_CachedCounts):
    """Counts over CSV/Parquet files read in chunks in this process (see the module docstring).

    Peak memory: one chunk (``chunk_rows`` rows as pandas plus their codes) plus the count tables
    of the cliques of one pass.
    """

    def __init__(self, source: TableSource, encoder: TableEncoder, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 progress: bool = False) -> None:
        super().__init__(encoder.columns, encoder.sizes)
        self.source, self.encoder, self.chunk_rows, self.progress = source, encoder, int(chunk_rows), progress

    def _compute(self, cliques: list[Clique]) -> dict[Clique, np.ndarray]:
        from tqdm.auto import tqdm

        totals: dict[Clique, np.ndarray] | None = None
        bar = tqdm(desc=f"counting {len(cliques)} marginal(s)", unit=" chunks", disable=not self.progress, leave=False)
        for frame in iter_frames(self.source, self.encoder, self.chunk_rows):
            part = count_frame(self.encoder, frame, cliques)
            if totals is None:
                totals = part
            else:
                for c in cliques:
                    totals[c] += part[c]
            bar.update(1)
        bar.close()
        if totals is None:
            totals = {c: np.zeros(int(math.prod(self._sizes[self._columns.index(a)] for a in c)) if c else 1)
                      for c in cliques}
        return totals


# ----------------------------------------------------------------------------------------- Ray
class _PartCounter:
    """Ray Data UDF: the exact counts of ``cliques`` over the file parts of one batch, as rows."""

    def __init__(self, fmt: str, names: Sequence[str], encoder: TableEncoder, cliques: Sequence[Clique],
                 chunk_rows: int, partitions: dict[str, dict[str, str | None]] | None = None) -> None:
        self.fmt, self.names, self.encoder, self.cliques, self.chunk_rows = fmt, list(names), encoder, list(cliques), chunk_rows
        self.partitions = partitions or {}  # path -> its hive partition columns

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: list[dict[Clique, np.ndarray]] = []
        for path, groups in zip(batch["path"], batch["row_groups"]):
            groups = None if groups is None or len(groups) == 0 or groups[0] < 0 else [int(g) for g in groups]
            total = {c: np.zeros(_cells(self.encoder, c)) for c in self.cliques}
            for frame in iter_part_frames(Path(str(path)), self.fmt, self.encoder, self.names, self.chunk_rows, groups,
                                          partition=self.partitions.get(str(path))):
                for c, v in count_frame(self.encoder, frame, self.cliques).items():
                    total[c] += v
            rows.append(total)
        return {f"c{i}": np.stack([r[c] for r in rows]) for i, c in enumerate(self.cliques)}


def _cells(encoder: TableEncoder, clique: Clique) -> int:
    return int(math.prod(encoder.sizes[encoder.columns.index(a)] for a in clique)) if clique else 1


class RayCounts(_CachedCounts):
    """Counts computed with Ray Data: the input's parts (CSV files, Parquet row groups) are the
    blocks; each Ray worker reads and encodes its parts chunk by chunk with the same reader as
    :class:`StreamingCounts` and returns exact count tables, which the driver sums.

    No noise is drawn in the workers; only exact count tables travel back to the driver. The
    workers must see the input paths (a shared file system, or a path each node has).
    """

    def __init__(self, source: TableSource, encoder: TableEncoder, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 address: str | None = None, progress: bool = False) -> None:
        super().__init__(encoder.columns, encoder.sizes)
        self.ray = ensure_ray(address)
        self.source, self.encoder, self.chunk_rows, self.progress = source, encoder, int(chunk_rows), progress

    def _compute(self, cliques: list[Clique]) -> dict[Clique, np.ndarray]:
        ctx = self.ray.data.DataContext.get_current()
        ctx.enable_progress_bars = bool(self.progress)
        parts = source_parts(self.source)
        items = [{"path": p, "row_groups": np.asarray(g if g is not None else [-1], dtype=np.int64)} for p, g in parts]
        ds = self.ray.data.from_items(items, override_num_blocks=len(items))
        partitions = {str(p): self.source.partition_of(i) for i, p in enumerate(self.source.paths)}
        counter = _PartCounter(self.source.format, self.source.column_names(), self.encoder, cliques, self.chunk_rows,
                               partitions)
        out = ds.map_batches(counter, batch_size=1, batch_format="numpy")
        totals = {c: np.zeros(_cells(self.encoder, c)) for c in cliques}
        for batch in out.iter_batches(batch_format="numpy", batch_size=None):
            for i, c in enumerate(cliques):
                totals[c] += np.asarray(batch[f"c{i}"], dtype=np.float64).reshape(-1, totals[c].size).sum(axis=0)
        return totals
