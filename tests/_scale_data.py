"""A small table with missing values and unicode categories, written as CSV / Parquet parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METADATA = {
    "columns": {
        "city": {"type": "categorical", "categories": ["Zürich", "東京", "São Paulo", "Kraków"], "other_label": "other"},
        "age": {"type": "numerical", "lower": 18, "upper": 90, "integer": True},
        "member": {"type": "boolean"},
        "score": {"type": "numerical", "lower": -3, "upper": 3, "bins": 8},
        "plan": {"type": "categorical", "categories": ["бесплатно", "pro", "équipe"]},
        "uid": {"type": "id"},
    }
}
MST_FAST = {"iters": 100}  # fewer mirror-descent steps (post-processing) keep the tests short
#: Cliques whose exact counts every backend must agree on (the empty clique is the row count).
CLIQUES = [(), ("city",), ("age",), ("member",), ("plan",), ("city", "age"), ("member", "score", "city"), ("plan", "member")]


def make_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["Zürich", "東京", "São Paulo", "Kraków", "Ōsaka", ""], n).astype(object)
    city[rng.random(n) < 0.1] = None
    return pd.DataFrame({
        "city": city,
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 95, n)),  # some clipped
        "member": rng.choice([True, False, None], n),
        "score": np.where(rng.random(n) < 0.05, np.nan, rng.normal(0, 1.5, n)),
        "plan": rng.choice(["бесплатно", "pro", "équipe", None], n),
        "uid": np.arange(n),
    })


def write_inputs(df: pd.DataFrame, root: Path, parts: int = 3) -> dict[str, Path]:
    """``csv`` (one file), ``csv_dir`` and ``parquet_dir`` (``parts`` part files each)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "csv_dir").mkdir(exist_ok=True)
    (root / "parquet_dir").mkdir(exist_ok=True)
    df.to_csv(root / "table.csv", index=False)
    bounds = np.linspace(0, len(df), parts + 1).astype(int)
    for i in range(parts):
        part = df.iloc[bounds[i]:bounds[i + 1]]
        part.to_csv(root / "csv_dir" / f"part-{i:03d}.csv", index=False)
        part.to_parquet(root / "parquet_dir" / f"part-{i:03d}.parquet", index=False)
    return {"csv": root / "table.csv", "csv_dir": root / "csv_dir", "parquet_dir": root / "parquet_dir"}


def comparable_charges(ledger) -> list[dict]:
    """The parts of each charge that must not depend on the backend (events, stages, parameters, charge)."""
    keys = ("operation", "mechanism", "event", "stages", "sampling", "parameters", "charge", "neighbouring_relation", "privacy_unit")
    return [{k: e.get(k) for k in keys} for e in ledger.entries if e["kind"] == "charge"]


#: Metadata of the hive-partitioned table: ``year`` and ``region`` come from ``key=value`` folder
#: names and are declared like any other column (no type is inferred from the folder names).
HIVE_METADATA = {
    "columns": {
        **METADATA["columns"],
        "year": {"type": "numerical", "lower": 2015, "upper": 2025, "integer": True},
        "region": {"type": "categorical", "categories": ["São Paulo", "東京", "north"]},
    }
}
HIVE_CLIQUES = CLIQUES + [("year",), ("region",), ("year", "region", "city"), ("year", "age")]
#: (year folder value, region folder name as written, region value it stands for)
HIVE_LAYOUT = [("2020", "north", "north"), ("2021", "S%C3%A3o%20Paulo", "São Paulo"),
               ("2021", "%E6%9D%B1%E4%BA%AC", "東京"), ("__HIVE_DEFAULT_PARTITION__", "north", "north")]


def write_hive(df: pd.DataFrame, root: Path, fmt: str = "parquet") -> pd.DataFrame:
    """``df`` cut into ``root/year=Y/region=R/part-0.<fmt>`` folders (HIVE_LAYOUT, one more part in
    the first folder); returns the whole table with ``year`` and ``region`` as text columns (what
    the in-memory path would read)."""
    bounds = np.linspace(0, len(df), len(HIVE_LAYOUT) + 2).astype(int)
    frames = []
    for i in range(len(HIVE_LAYOUT) + 1):
        year, folder_region, region = HIVE_LAYOUT[max(0, i - 1)]
        part = df.iloc[bounds[i]:bounds[i + 1]]
        folder = root / f"year={year}" / f"region={folder_region}"
        folder.mkdir(parents=True, exist_ok=True)
        name = folder / f"part-{i}.{fmt}"
        part.to_parquet(name, index=False) if fmt == "parquet" else part.to_csv(name, index=False)
        frames.append(part.assign(year=None if year.startswith("__") else year, region=region))
    return pd.concat(frames, ignore_index=True)
