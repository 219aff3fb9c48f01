"""What writing a release as one bound unit costs, against a plain ``DataFrame.to_csv`` in the same process.

``write_release`` adds: the reservation lock, temp files with fsync, SHA-256 of the data and card,
a signed ``release`` entry, three renames and a folder fsync after each. The baseline writes the
same frame with ``to_csv`` alone (no fsync). Each is run ``--repeats`` times; the median is shown.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/release_write.py --rows 200000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from dp_accounting import dp_event

from dpsynth.accounting import Ledger, PrivacyBudget
from dpsynth.card import build_card
from dpsynth.release import write_release


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "age": rng.integers(18, 90, rows),
        "score": rng.normal(size=rows).round(4),
        "group": rng.choice(["alpha", "beta", "gamma"], rows),
        "flag": rng.random(rows) < 0.3,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = frame(args.rows)
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="one row", source_name="bench")
    entry = ledger.charge(operation="bench", mechanism="gaussian", event=dp_event.GaussianDpEvent(5.0), delta=1e-6)
    ledger.complete(entry)
    card = build_card(ledger)
    plain, release = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.repeats):
            start = time.perf_counter()
            data.to_csv(Path(folder) / f"plain{i}.csv", index=False)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            write_release(Path(folder) / f"release{i}.csv", lambda tmp: data.to_csv(tmp, index=False), ledger, card)
            release.append(time.perf_counter() - start)
        size = (Path(folder) / "plain0.csv").stat().st_size
    base, bound = statistics.median(plain), statistics.median(release)
    print(f"rows={args.rows:,} csv={size / 2**20:.1f} MiB repeats={args.repeats}")
    print(f"to_csv only        {base:8.3f} s")
    print(f"write_release      {bound:8.3f} s   ratio {bound / base:.2f}x   overhead {bound - base:+.3f} s")


if __name__ == "__main__":
    main()
