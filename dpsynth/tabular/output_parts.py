"""Partitioned synthetic output: rows sampled from a fitted DP model into a directory of part files.

Privacy: sampling rows from the fitted model is post-processing of DP outputs (the model); it
reads no private data, so it can run anywhere and costs no budget (recorded as a
``postprocessing`` ledger entry). The release is written by
:func:`dpsynth.release_parts.write_partitioned_release` (hidden temp directory, renamed into place,
ledger last, manifest of every part bound in the ledger).

Parts: ``rows`` are cut into parts of ``part_rows`` rows (the last one smaller), named
``part-00000.<fmt>`` in row order; fresh ids continue across parts (part ``i`` starts after the
rows of parts ``0..i-1``). Each part is written in chunks of ``chunk_rows`` rows.

Where the rows are drawn:

* ``parallel="local"`` -- in this process, part after part, from the synthesizer's sampling
  generator (seeded by ``seed`` when given, as the single-file output);
* ``parallel="ray"`` -- one Ray task per part, in parallel; each task writes its own part into
  the temp directory (which every worker must see: a shared file system or one node) and returns
  the part's size, rows and SHA-256 to the driver, which binds them in the manifest. Each task
  draws from its own generator: OS entropy (:func:`dpsynth.randomness.secret_numpy_rng`) without
  ``seed``; with ``seed``, the generator of ``SeedSequence(seed, spawn_key=(part,))``, so a seeded
  run is reproducible whatever the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.errors import DpsynthError
from dpsynth.tabular.private_table import DEFAULT_CHUNK_ROWS

if TYPE_CHECKING:  # pragma: no cover
    from dpsynth.release import ReleasePaths
    from dpsynth.tabular.synthesize import Synthesizer

PARALLEL = ("local", "ray")


class OutputFormatError(DpsynthError, ValueError):
    """The partitioned output cannot be written as asked (name, format, parallel mode)."""


class SamplingWorkerFailed(DpsynthError, RuntimeError):
    """A Ray task failed while sampling a part; nothing was released (the fit's charges stay)."""


def plan_parts(rows: int, part_rows: int) -> list[tuple[int, int, int]]:
    """``(index, offset, rows)`` of each part: ``rows`` cut into parts of ``part_rows`` (public numbers)."""
    rows, part_rows = int(rows), int(part_rows)
    if rows < 1 or part_rows < 1:
        raise ValueError(f"rows and part_rows must be positive integers, got {rows} and {part_rows}")
    return [(i, offset, min(part_rows, rows - offset)) for i, offset in enumerate(range(0, rows, part_rows))]


def sample_frames(model: Any, encoder: Any, rows: int, offset: int, chunk_rows: int,
                  rng: np.random.Generator) -> Iterator[pd.DataFrame]:
    """``rows`` synthetic rows as DataFrames of at most ``chunk_rows`` rows; id columns count on from ``offset``."""
    id_cols = [s.name for s in encoder.schema.columns if s.type == "id"]
    done = 0
    while done < rows:
        k = min(int(chunk_rows), rows - done)
        frame = encoder.decode(model.sample(k, rng), rng)
        for name in id_cols:  # fresh ids continue across chunks and parts
            frame[name] = np.arange(offset + done + 1, offset + done + k + 1)
        done += k
        yield frame


def write_part_file(path: Path, frames: Iterator[pd.DataFrame], fmt: str, arrow_schema: Any) -> int:
    """Write ``frames`` to one ``.parquet`` (one row group per frame, schema fixed by the public
    schema) or ``.csv`` file; return the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    try:
        for i, frame in enumerate(frames):
            rows += len(frame)
            if fmt == "csv":
                frame.to_csv(path, mode="w" if i == 0 else "a", header=(i == 0), index=False)
                continue
            table = pa.Table.from_pandas(_for_arrow(frame, arrow_schema), schema=arrow_schema, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(str(path), arrow_schema)
            writer.write_table(table)
        if rows == 0 and fmt == "parquet":
            pq.write_table(arrow_schema.empty_table(), str(path))
    finally:
        if writer is not None:
            writer.close()
    return rows


def _part_rng(seed: int | None, index: int) -> np.random.Generator:
    from dpsynth.randomness import secret_numpy_rng

    if seed is None:
        return secret_numpy_rng()  # drawn here, inside the task
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))


def sample_part(model: Any, encoder: Any, arrow_schema: Any, fmt: str, path: str, index: int, offset: int,
                rows: int, chunk_rows: int, seed: int | None) -> dict[str, Any]:
    """One Ray task: sample part ``index`` into ``path`` and describe it (name, bytes, rows, SHA-256)."""
    from dpsynth.release_parts import describe_part

    written = write_part_file(Path(path), sample_frames(model, encoder, rows, offset, chunk_rows,
                                                         _part_rng(seed, index)), fmt, arrow_schema)
    return describe_part(path, written)


def _write_parts_locally(synth: "Synthesizer", folder: Path, parts, fmt: str, arrow_schema: Any, chunk_rows: int,
                         progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    from dpsynth.release_parts import describe_part, part_name

    out = []
    for index, offset, rows in tqdm(parts, desc="sampling parts", unit=" parts", disable=not progress, leave=False):
        path = folder / part_name(index, fmt)
        written = write_part_file(path, sample_frames(synth.model_, synth.encoder_, rows, offset, chunk_rows,
                                                      synth._rng), fmt, arrow_schema)
        out.append(describe_part(path, written))
    return out


def _write_parts_on_ray(synth: "Synthesizer", folder: Path, parts, fmt: str, arrow_schema: Any, chunk_rows: int,
                        progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    from dpsynth.ray_support import ensure_ray
    from dpsynth.release_parts import part_name

    ray = ensure_ray(getattr(synth, "ray_address", None))
    task = ray.remote(num_cpus=1, max_retries=0)(sample_part)
    model_ref, encoder_ref = ray.put(synth.model_), ray.put(synth.encoder_)
    futures = [task.remote(model_ref, encoder_ref, arrow_schema, fmt, str(folder / part_name(i, fmt)), i, offset,
                           rows, chunk_rows, synth.seed) for i, offset, rows in parts]
    pending, out = list(futures), {}
    bar = tqdm(total=len(futures), desc="sampling parts on Ray", unit=" parts", disable=not progress, leave=False)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                out[ref] = ray.get(ref)
                bar.update(1)
    except Exception as exc:  # a task failed or a worker died: stop the others before the temp dir goes
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=60)
        raise SamplingWorkerFailed(
            f"a Ray task failed while sampling the synthetic parts ({type(exc).__name__}); nothing was released. "
            "The fit's privacy charges stay spent (sampling the fitted model again costs nothing)"
        ) from exc
    finally:
        bar.close()
    return [out[ref] for ref in futures]


def release_card(synth: "Synthesizer", rows: int, **tabular_extra: Any) -> tuple[Any, dict[str, Any]]:
    """The ledger snapshot and the card of a streamed or partitioned release of ``rows`` sampled rows.

    Every field is public: the method, the public schema, the row count asked for (or released by
    DP), the backend and the output layout."""
    from dpsynth.card import build_card
    from dpsynth.tabular import _accounting as acc

    snapshot = synth.ledger if isinstance(synth.ledger, acc.Ledger) else synth.ledger.load()
    card = build_card(
        snapshot,
        generator_model={"family": "dpsynth.tabular", "method": synth.method_},
        synthetic_ratio=None,
        filters=[],
        extra={"tabular": {"rows": int(rows), "columns": list(map(str, synth.schema_.names)),
                           "public_domain": synth.schema_.to_dict(),
                           "backend": getattr(synth, "backend", "memory"), **tabular_extra}},
    )
    return snapshot, card


def write_partitioned(synth: "Synthesizer", path: str | Path, rows: int | None = None, *, force: bool = False,
                      part_rows: int = DEFAULT_CHUNK_ROWS, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                      parallel: str | None = None) -> "ReleasePaths":
    """Sample ``rows`` rows into the directory ``path`` (``out.parquet/`` or ``out.csv/``) of part
    files, with the ledger and card beside it (see the module docstring).

    ``rows`` defaults to the public (or DP) row count. ``parallel`` defaults to ``"ray"`` for a
    synthesizer fitted on the Ray backend, else ``"local"``.
    """
    from dpsynth.release_parts import write_partitioned_release

    if synth.model_ is None or synth.encoder_ is None or synth.schema_ is None:
        raise RuntimeError("call fit() before write_partitioned()")
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("parquet", "csv"):
        raise OutputFormatError(f"partitioned output is a directory named *.parquet or *.csv, not {path.name!r}")
    parallel = parallel or ("ray" if getattr(synth, "backend", "memory") == "ray" else "local")
    if parallel not in PARALLEL:
        raise OutputFormatError(f"parallel must be one of {', '.join(PARALLEL)}, got {parallel!r}")
    n = int(rows) if rows is not None else max(1, int(round(synth.n_public_ or 1)))
    parts = plan_parts(n, part_rows)
    synth.ledger.record_postprocessing(
        operation="tabular.sample",
        description=f"{n} rows sampled from the fitted DP {synth.method_} model into {len(parts)} part file(s) "
                    "(post-processing, no privacy cost)",
        parameters={"rows": int(n), "method": synth.method_, "parts": len(parts), "sampled_on": parallel},
    )
    arrow_schema = output_arrow_schema(synth.schema_)
    snapshot, card = release_card(synth, n, partitioned={"format": fmt, "parts": len(parts),
                                                         "part_rows": int(part_rows)})
    writer = _write_parts_on_ray if parallel == "ray" else _write_parts_locally

    def write_parts(folder: Path) -> list[dict[str, Any]]:
        return writer(synth, folder, parts, fmt, arrow_schema, int(chunk_rows), bool(synth.progress))

    return write_partitioned_release(path, write_parts, snapshot, card, fmt=fmt, force=force)


def output_arrow_schema(schema) -> "Any":
    """The Parquet schema of the synthetic output, fixed from the public schema (every chunk agrees)."""
    import pyarrow as pa

    fields = []
    for spec in schema.columns:
        if spec.type == "categorical":
            labels = list(spec.categories or ()) + ([spec.other_label] if spec.other_label is not None else [])
            if labels and all(isinstance(v, (bool, np.bool_)) for v in labels):
                typ = pa.bool_()
            elif labels and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
                typ = pa.int64()
            elif labels and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in labels):
                typ = pa.float64()
            else:
                typ = pa.string()
        elif spec.type == "boolean":
            typ = pa.bool_()
        elif spec.type == "numerical":
            typ = pa.int64() if spec.integer else pa.float64()
        elif spec.type == "datetime":
            typ = pa.string() if spec.datetime_format else pa.timestamp("ns")
        else:  # id
            typ = pa.int64()
        fields.append(pa.field(spec.name, typ, nullable=True))
    return pa.schema(fields)


def _for_arrow(frame: pd.DataFrame, arrow_schema) -> pd.DataFrame:
    """Text categories as ``str`` (a mixed category list is written as text)."""
    import pyarrow as pa

    frame = frame.copy()
    for field in arrow_schema:
        if field.type == pa.string() and frame[field.name].dtype == object:
            frame[field.name] = frame[field.name].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return frame


def read_partitioned(path: str | Path) -> pd.DataFrame:
    """The rows of a partitioned output directory, parts in name order (for tests and small outputs)."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv"))
    if not files:
        return pd.DataFrame()
    if files[0].suffix.lower() == ".parquet":
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


__all__ = ["OutputFormatError", "SamplingWorkerFailed", "output_arrow_schema", "plan_parts", "read_partitioned", "sample_frames", "write_partitioned",
           "write_part_file"]
