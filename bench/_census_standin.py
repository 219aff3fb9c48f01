"""A public stand-in for UCI Census-Income (KDD): same shape, similar domain sizes, known network.

Census-Income (199,523 training rows x 42 columns, 99,762 test rows) cannot be downloaded here, so
the benchmark draws a table of the same shape from a **public random Bayesian network with a fixed
seed**. It is a stand-in, not the real data: numbers measured on it say how methods compare on a
table of that size and of those domain sizes, not what they would score on Census-Income.

* Columns: the 42 of Census-Income (the 40 attributes, the instance weight and the income label)
  with domain sizes close to the real ones once continuous columns are binned (2-53 values:
  e.g. 52 industry codes, 47 occupation codes, 51 states, 43 countries of birth, 53 weeks worked).
* Marginals are skewed like the real columns: each column's base distribution is a sorted
  Dirichlet(0.25) draw (mixed 9:1 with the uniform, so a binary column keeps at least 5% per value), so most columns have a dominant value and a tail of rare values (which is
  what MST's merging of rare values is for).
* Dependencies: columns in order; each has 0-3 parents among earlier columns (at most 2,500
  parent configurations); each parent configuration's conditional is a Dirichlet(c * base + 0.01)
  draw, with a per-column concentration c in [1, 20] (smaller c: stronger dependence).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: (name, number of values) for the 42 columns, in Census-Income's order.
COLUMNS: list[tuple[str, int]] = [
    ("age", 10), ("class_of_worker", 9), ("industry_code", 52), ("occupation_code", 47), ("education", 17),
    ("wage_per_hour", 8), ("enrolled_in_edu", 3), ("marital_status", 7), ("major_industry", 24),
    ("major_occupation", 15), ("race", 5), ("hispanic_origin", 10), ("sex", 2), ("labor_union", 3),
    ("unemployment_reason", 6), ("employment_status", 8), ("capital_gains", 8), ("capital_losses", 8),
    ("dividends", 8), ("tax_filer_status", 6), ("previous_region", 6), ("previous_state", 51),
    ("household_detail", 38), ("household_summary", 8), ("instance_weight", 10), ("migration_msa", 10),
    ("migration_region", 9), ("migration_within_region", 10), ("same_house_1yr", 3), ("migration_sunbelt", 4),
    ("employer_size", 7), ("family_under_18", 5), ("country_father", 43), ("country_mother", 43),
    ("country_self", 43), ("citizenship", 5), ("own_business", 3), ("veterans_questionnaire", 3),
    ("veterans_benefits", 3), ("weeks_worked", 53), ("year", 2), ("income", 2),
]
TRAIN_ROWS, TEST_ROWS = 199_523, 99_762
SEED = 20_260_101


def network(seed: int = SEED):
    """(parents, conditional tables) of the public network; tables have shape parent sizes + (k,)."""
    rng = np.random.default_rng(seed)
    sizes = [k for _, k in COLUMNS]
    parents, cpts = [], []
    for j, k in enumerate(sizes):
        base = 0.9 * np.sort(rng.dirichlet(np.full(k, 0.25)))[::-1] + 0.1 / k  # no value below 0.1 / k
        par: list[int] = []
        for p in rng.permutation(j)[: int(rng.integers(0, 4))] if j else []:
            if np.prod([sizes[q] for q in par + [int(p)]]) <= 2500:
                par.append(int(p))
        par.sort()
        configs = int(np.prod([sizes[q] for q in par])) if par else 1
        concentration = rng.uniform(1.0, 20.0)  # smaller: conditionals further from the base (stronger dependence)
        table = rng.dirichlet(concentration * base + 0.01, size=configs)
        parents.append(par)
        cpts.append(table.reshape(tuple(sizes[q] for q in par) + (k,)))
    return parents, cpts


def draw_codes(n: int, rng: np.random.Generator, seed: int = SEED) -> np.ndarray:
    """``n`` rows of codes from the network (``rng`` draws the rows; the network is fixed by ``seed``)."""
    parents, cpts = network(seed)
    codes = np.zeros((n, len(COLUMNS)), dtype=np.int64)
    for j, (par, cpt) in enumerate(zip(parents, cpts)):
        k = cpt.shape[-1]
        cond = cpt[tuple(codes[:, p] for p in par)] if par else np.broadcast_to(cpt, (n, k))
        cdf = np.cumsum(cond, axis=-1)
        codes[:, j] = np.minimum((cdf < rng.random(n)[:, None] * cdf[:, -1:]).sum(axis=1), k - 1)
    return codes


def tables() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(train, test, public metadata): categorical columns with values ``v0..v{k-1}``."""
    rng = np.random.default_rng(SEED + 1)
    train, test = draw_codes(TRAIN_ROWS, rng), draw_codes(TEST_ROWS, rng)
    labels = {name: np.array([f"v{i}" for i in range(k)], dtype=object) for name, k in COLUMNS}

    def frame(codes: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({name: labels[name][codes[:, j]] for j, (name, _) in enumerate(COLUMNS)})

    meta = {"columns": {name: {"type": "categorical", "categories": list(labels[name])} for name, _ in COLUMNS}}
    return frame(train), frame(test), meta
