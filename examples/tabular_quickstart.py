"""Quick start: DP synthetic data from a small table with public metadata.

Run: ``python examples/tabular_quickstart.py OUT_DIR`` -- writes OUT_DIR/synthetic.csv with its
ledger and card, then samples more rows for free (post-processing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.tabular import Synthesizer


def main(out_dir: Path) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    age = rng.integers(18, 80, n)
    private = pd.DataFrame(
        {
            "age": age,
            "income": np.where(age > 45, rng.normal(70000, 9000, n), rng.normal(40000, 9000, n)),
            "city": rng.choice(["north", "south", "east"], n),
        }
    )
    # Every column is declared below, so nothing about types, bounds or categories comes from the
    # values. (For undeclared columns the library takes a number/bool/datetime dtype as the type:
    # the caller vouches that such dtypes are public; text columns get a charged DP type step.)
    metadata = {  # public: written without looking at the data
        "row_count": n,
        "columns": {
            "age": {"type": "numerical", "lower": 18, "upper": 80, "integer": True, "bins": 8},
            "income": {"type": "numerical", "lower": 0, "upper": 150000, "bins": 10},
            "city": {"type": "categorical", "categories": ["north", "south", "east"]},
        },
    }
    synth = Synthesizer(epsilon=1.0, delta=1e-6, method="mst", metadata=metadata).fit(private)
    result = synth.sample()
    paths = result.save(out_dir / "synthetic.csv", force=True)
    print(result.data.head())
    print(f"epsilon spent: {result.ledger.epsilon_spent:.4f}; wrote {paths.data}, {paths.ledger}, {paths.card}")
    more = synth.sample(10_000)  # free: post-processing, recorded in the ledger at zero cost
    print(f"{len(more.data)} more rows; epsilon still {more.ledger.epsilon_spent:.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
