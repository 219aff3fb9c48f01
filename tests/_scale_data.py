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
