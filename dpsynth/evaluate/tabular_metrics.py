"""Utility and fidelity metrics for synthetic tables.

Privacy note: none of these functions is differentially private. Every number computed from a
real table (the private training data or the real holdout) describes real records and must be
reported with ``reads_private_data: true`` and never published or fed back into generation
without a ledger entry. The *discretisation* used for marginals is derived only from the
synthetic table (a DP output, so post-processing) or from public metadata, never from real data.

Definitions
-----------
* **Discretisation**: each numeric column is cut into ``bins`` bins whose edges are quantiles of
  the *synthetic* column, plus one cell below and one above the synthetic range (or given public
  edges); categorical columns keep their values (a value
  seen only in the real data gets its own code, which counts fully towards the distance).
* **k-way marginal TVD**: for a set of ``k`` columns, ``0.5 * sum |p - q|`` over the joint cells,
  where ``p``/``q`` are the empirical joint distributions of the discretised real / synthetic
  tables. Averaged (and maxed) over all ``k``-subsets of columns. 0 for identical tables, 1 for
  tables with disjoint supports.
* **Per-column distances**: TVD on the discretised column, and for numeric columns the
  Kolmogorov-Smirnov statistic on the raw values.
* **TSTR / TRTR**: train a scikit-learn model on synthetic (TSTR) or real (TRTR) rows and score it
  on the real holdout (accuracy and macro-F1 for classification, R^2 for regression).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from dpsynth.evaluate.errors import EvaluationInputError


DEFAULT_BINS = 5
MAX_CATEGORIES_FOR_CLASSIFICATION = 20


def is_numeric_column(series: pd.Series) -> bool:
    """True for numeric, non-boolean columns (treated as continuous)."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def check_same_columns(real: pd.DataFrame, synthetic: pd.DataFrame) -> list[str]:
    """Return the shared column order, raising ``ValueError`` when the schemas differ or are empty."""
    if len(real) == 0 or len(synthetic) == 0:
        raise EvaluationInputError("cannot compare empty tables (real rows=%d, synthetic rows=%d)"
                                   % (len(real), len(synthetic)))
    missing = [c for c in real.columns if c not in synthetic.columns]
    extra = [c for c in synthetic.columns if c not in real.columns]
    if missing or extra:
        raise EvaluationInputError(f"column mismatch: missing in synthetic {missing}, extra in synthetic {extra}")
    return list(real.columns)


def public_bin_edges(
    synthetic: pd.DataFrame,
    bins: int = DEFAULT_BINS,
    public_edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, np.ndarray]:
    """Bin edges for every numeric column, from public edges or synthetic-data quantiles.

    Only the synthetic table (a DP release) and public metadata are read, so the edges
    themselves carry no extra privacy cost.
    """
    edges: dict[str, np.ndarray] = {}
    public_edges = public_edges or {}
    for column in synthetic.columns:
        if column in public_edges:
            edges[column] = np.asarray(sorted(public_edges[column]), dtype=float)
            continue
        if not is_numeric_column(synthetic[column]):
            continue
        values = synthetic[column].dropna().to_numpy(dtype=float)
        if values.size == 0:
            edges[column] = np.array([0.0])
            continue
        quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
        # Outer edges at the synthetic min / just above the max: real values outside the synthetic
        # range land in their own cells instead of being merged into the extreme bins.
        lo, hi = values.min(), np.nextafter(values.max(), np.inf)
        edges[column] = np.unique(np.concatenate([[lo], quantiles, [hi]]))
    return edges


def discretise(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    edges: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Encode both tables as integer codes on the same cells.

    Numeric columns in ``edges`` are cut with ``np.digitize`` (values below the first edge go to
    bin 0, above the last to the last bin; missing values get their own code). Other columns are
    coded by value over the union of observed values. Returns ``(real_codes, synth_codes, sizes)``.
    """
    columns = list(real.columns)
    real_codes = np.zeros((len(real), len(columns)), dtype=np.int64)
    synth_codes = np.zeros((len(synthetic), len(columns)), dtype=np.int64)
    sizes: list[int] = []
    for j, column in enumerate(columns):
        if column in edges and is_numeric_column(real[column]) and is_numeric_column(synthetic[column]):
            cut = np.asarray(edges[column], dtype=float)
            n_bins = cut.size + 1

            def code(values: pd.Series, cut: np.ndarray = cut, n_bins: int = n_bins) -> np.ndarray:
                arr = values.to_numpy(dtype=float)
                out = np.digitize(arr, cut)
                out[np.isnan(arr)] = n_bins  # missing values: one extra cell
                return out

            real_codes[:, j] = code(real[column])
            synth_codes[:, j] = code(synthetic[column])
            sizes.append(n_bins + 1)
        else:
            real_vals = real[column].astype("string").fillna("<NA>")
            synth_vals = synthetic[column].astype("string").fillna("<NA>")
            categories = pd.Index(pd.unique(pd.concat([synth_vals, real_vals], ignore_index=True)))
            real_codes[:, j] = categories.get_indexer(real_vals)
            synth_codes[:, j] = categories.get_indexer(synth_vals)
            sizes.append(len(categories))
    return real_codes, synth_codes, sizes


def _joint_distribution(codes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    flat = np.ravel_multi_index(tuple(codes.T), tuple(sizes))
    counts = np.bincount(flat, minlength=int(np.prod(sizes)))
    return counts / counts.sum()


def _tvd_over_subsets(
    real_codes: np.ndarray, synth_codes: np.ndarray, sizes: Sequence[int], subsets: Sequence[tuple[int, ...]]
) -> list[float]:
    values = []
    for subset in subsets:
        idx = list(subset)
        sub_sizes = [sizes[i] for i in idx]
        p = _joint_distribution(real_codes[:, idx], sub_sizes)
        q = _joint_distribution(synth_codes[:, idx], sub_sizes)
        values.append(float(0.5 * np.abs(p - q).sum()))
    return values


def marginal_tvd(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    ways: Sequence[int] = (1, 2, 3),
    bins: int = DEFAULT_BINS,
    public_edges: Mapping[str, Sequence[float]] | None = None,
    max_subsets: int = 2000,
    seed: int = 0,
    sampling_floor: bool = True,
) -> dict[str, Any]:
    """Average and maximum TVD over all k-way marginals for each ``k`` in ``ways``.

    When a ``k`` has more than ``max_subsets`` column subsets, a fixed-seed random sample of
    subsets is used (reported as ``subsets``). With ``sampling_floor``, ``floor_mean`` is the
    same average between two independent bootstrap resamples of the *real* table (one of the real
    size, one of the synthetic size): roughly the distance a perfect generator would still show
    from sampling noise alone (large for small tables and many cells);
    ``excess_mean = mean - floor_mean``. Returns
    ``{"1way": {"mean", "max", "subsets", "floor_mean", "excess_mean"}, ...,
    "per_marginal": {"1way": {"col": tvd}, ...}}``.
    """
    columns = check_same_columns(real, synthetic)
    synthetic = synthetic[columns]
    edges = public_bin_edges(synthetic, bins=bins, public_edges=public_edges)
    real_codes, synth_codes, sizes = discretise(real, synthetic, edges)
    rng = np.random.default_rng(seed)
    # Two independent bootstrap samples of the real table (sizes of the real and synthetic tables)
    # mimic comparing two independent samples of one distribution: the noise floor.
    boot_real = real_codes[rng.integers(len(real_codes), size=len(real_codes))]
    boot_synth = real_codes[rng.integers(len(real_codes), size=len(synth_codes))]
    result: dict[str, Any] = {"per_marginal": {}, "bins": bins}
    for k in ways:
        if k > len(columns):
            continue
        subsets = list(itertools.combinations(range(len(columns)), k))
        if len(subsets) > max_subsets:
            chosen = rng.choice(len(subsets), size=max_subsets, replace=False)
            subsets = [subsets[i] for i in sorted(chosen)]
        values = _tvd_over_subsets(real_codes, synth_codes, sizes, subsets)
        entry = {"mean": float(np.mean(values)), "max": float(np.max(values)), "subsets": len(values)}
        if sampling_floor:
            floor = float(np.mean(_tvd_over_subsets(boot_real, boot_synth, sizes, subsets)))
            entry.update(floor_mean=floor, excess_mean=entry["mean"] - floor)
        result[f"{k}way"] = entry
        result["per_marginal"][f"{k}way"] = {" x ".join(columns[i] for i in s): v
                                             for s, v in zip(subsets, values)}
    return result


def column_distances(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    bins: int = DEFAULT_BINS,
    public_edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-column TVD on the public discretisation, plus the KS statistic for numeric columns."""
    columns = check_same_columns(real, synthetic)
    synthetic = synthetic[columns]
    edges = public_bin_edges(synthetic, bins=bins, public_edges=public_edges)
    real_codes, synth_codes, sizes = discretise(real, synthetic, edges)
    out: dict[str, dict[str, float]] = {}
    for j, column in enumerate(columns):
        p = np.bincount(real_codes[:, j], minlength=sizes[j]) / len(real)
        q = np.bincount(synth_codes[:, j], minlength=sizes[j]) / len(synthetic)
        entry = {"tvd": float(0.5 * np.abs(p - q).sum())}
        if is_numeric_column(real[column]) and is_numeric_column(synthetic[column]):
            r = real[column].dropna().to_numpy(dtype=float)
            s = synthetic[column].dropna().to_numpy(dtype=float)
            if r.size and s.size:
                entry["ks"] = float(stats.ks_2samp(r, s).statistic)
        out[column] = entry
    return out


def marginal_histograms(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    bins: int = DEFAULT_BINS,
    max_cells: int = 20,
) -> dict[str, dict[str, list]]:
    """1-way histograms (labels, real share, synthetic share) for plotting in the report."""
    columns = check_same_columns(real, synthetic)
    synthetic = synthetic[columns]
    edges = public_bin_edges(synthetic, bins=bins)
    real_codes, synth_codes, sizes = discretise(real, synthetic, edges)
    out: dict[str, dict[str, list]] = {}
    for j, column in enumerate(columns):
        p = np.bincount(real_codes[:, j], minlength=sizes[j]) / len(real)
        q = np.bincount(synth_codes[:, j], minlength=sizes[j]) / len(synthetic)
        if column in edges and is_numeric_column(real[column]):
            cut = edges[column]
            labels = [f"<{cut[0]:.3g}"] if cut.size else ["all"]
            labels += [f"{cut[i]:.3g}-{cut[i + 1]:.3g}" for i in range(cut.size - 1)]
            labels += [f">={cut[-1]:.3g}"] if cut.size else []
            labels += ["NA"]
        else:
            vals = pd.concat([synthetic[column].astype("string").fillna("<NA>"),
                              real[column].astype("string").fillna("<NA>")], ignore_index=True)
            labels = [str(v) for v in pd.unique(vals)]
        order = np.argsort(-(p + q))[:max_cells] if len(labels) > max_cells else np.arange(len(labels))
        out[column] = {"labels": [labels[i] for i in order], "real": [float(p[i]) for i in order],
                       "synthetic": [float(q[i]) for i in order]}
    return out


@dataclass(frozen=True)
class EfficacyResult:
    """Scores of one model trained on one table and tested on the real holdout."""

    task: str
    metric: str
    score: float
    secondary: dict[str, float]


def infer_task(target: pd.Series) -> str:
    """``"classification"`` for non-numeric or low-cardinality targets, else ``"regression"``."""
    if not is_numeric_column(target):
        return "classification"
    n_unique = target.nunique(dropna=True)
    integer_valued = bool(np.all(np.mod(target.dropna().to_numpy(dtype=float), 1) == 0))
    if integer_valued and n_unique <= MAX_CATEGORIES_FOR_CLASSIFICATION:
        return "classification"
    return "regression"


def _feature_pipeline(features: pd.DataFrame, task: str, seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in features.columns if is_numeric_column(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    transformers = []
    if numeric:
        transformers.append(("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric))
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore"), categorical))
    model = (RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1)
             if task == "classification"
             else RandomForestRegressor(n_estimators=50, random_state=seed, n_jobs=1))
    return Pipeline([("prep", ColumnTransformer(transformers)), ("model", model)])


def _prepare_target(y: pd.Series, task: str) -> pd.Series:
    return y.astype("string").fillna("<NA>") if task == "classification" else y.astype(float)


def train_and_score(
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    task: str | None = None,
    seed: int = 0,
) -> EfficacyResult:
    """Fit a random forest on ``train`` and score it on ``test`` (the real holdout).

    Classification reports accuracy (primary) and macro-F1; regression reports R^2. A training
    table with a single class yields a constant predictor (scored honestly, not an error).
    """
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    for name, frame in (("training", train), ("test", test)):
        if target not in frame.columns:
            raise EvaluationInputError(f"target column {target!r} missing from the {name} table")
        if len(frame) == 0:
            raise EvaluationInputError(f"the {name} table is empty")
    task = task or infer_task(test[target])
    x_train, x_test = train.drop(columns=[target]), test.drop(columns=[target])
    if x_train.shape[1] == 0:
        raise EvaluationInputError(f"no feature columns besides the target {target!r}")
    y_train, y_test = _prepare_target(train[target], task), _prepare_target(test[target], task)
    if task == "classification" and y_train.nunique() < 2:
        predictions = np.full(len(y_test), y_train.iloc[0], dtype=object)
    else:
        model = _feature_pipeline(x_train, task, seed)
        model.fit(x_train, y_train)
        predictions = model.predict(x_test[x_train.columns])
    if task == "classification":
        y_true = y_test.astype(str).to_numpy()
        y_pred = np.asarray(predictions).astype(str)
        return EfficacyResult(task, "accuracy", float(accuracy_score(y_true, y_pred)),
                              {"macro_f1": float(f1_score(y_true, y_pred, average="macro"))})
    return EfficacyResult(task, "r2", float(r2_score(y_test, predictions)), {})


def tstr_trtr(
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    target: str,
    private: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train-on-synthetic and (when ``private`` is given) train-on-real, both tested on ``holdout``.

    ``ratio`` is TSTR / TRTR (for R^2, computed only when TRTR > 0).
    """
    task = infer_task(holdout[target])
    tstr = train_and_score(synthetic, holdout, target, task, seed)
    out: dict[str, Any] = {"task": task, "metric": tstr.metric, "tstr": tstr.score,
                           "tstr_secondary": tstr.secondary}
    if private is not None:
        trtr = train_and_score(private, holdout, target, task, seed)
        out["trtr"] = trtr.score
        out["trtr_secondary"] = trtr.secondary
        out["ratio"] = float(tstr.score / trtr.score) if trtr.score > 0 else None
    return out


def augmentation_ablation(
    real_train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    target: str,
    ratio: float,
    seed: int = 0,
) -> dict[str, Any]:
    """No-synthetic vs with-synthetic ablation for the hybrid recipe at ``ratio``.

    ``real_train`` is split 80/20 into fit and *dev* parts. Both models (real fit part alone, and
    real fit part plus synthetic rows making up ``ratio`` of the training set) are scored on the
    dev part (the in-distribution view a practitioner would tune on) and on the real holdout.
    ``gain_dev`` / ``gain_holdout`` are with-minus-without. A gain that appears on dev but not on
    the holdout is the "vanishing gain" the release decision rejects.
    """
    from dpsynth.evaluate.mix import mix_frames

    task = infer_task(holdout[target])
    shuffled = real_train.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_dev = max(1, int(round(0.2 * len(shuffled))))
    dev, fit = shuffled.iloc[:n_dev], shuffled.iloc[n_dev:]
    if len(fit) == 0:
        raise EvaluationInputError("real training table too small for the ablation (need at least 2 rows)")
    hybrid = mix_frames(fit, synthetic, ratio=ratio, seed=seed, replace=True)
    base_dev = train_and_score(fit, dev, target, task, seed).score
    base_hold = train_and_score(fit, holdout, target, task, seed).score
    mix_dev = train_and_score(hybrid, dev, target, task, seed).score
    mix_hold = train_and_score(hybrid, holdout, target, task, seed).score
    return {"task": task, "ratio": ratio, "real_only_dev": base_dev, "hybrid_dev": mix_dev,
            "real_only_holdout": base_hold, "hybrid_holdout": mix_hold,
            "gain_dev": mix_dev - base_dev, "gain_holdout": mix_hold - base_hold}


def sdmetrics_quality(
    real: pd.DataFrame, synthetic: pd.DataFrame, max_rows: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Run sdmetrics' ``QualityReport`` (Column Shapes, Column Pair Trends).

    Metadata is inferred from dtypes (numeric -> numerical, else categorical). Tables above
    ``max_rows`` rows are subsampled (fixed seed) to bound the run time. Returns the overall
    score and the per-property scores.
    """
    from sdmetrics.reports import QualityReport

    columns = check_same_columns(real, synthetic)
    if len(real) > max_rows:
        real = real.sample(n=max_rows, random_state=seed)
    if len(synthetic) > max_rows:
        synthetic = synthetic.sample(n=max_rows, random_state=seed)
    metadata = {"tables": {"table": {"columns": {
        c: {"sdtype": "numerical" if is_numeric_column(real[c]) else "categorical"} for c in columns}}}}
    report = QualityReport()
    report.generate({"table": real[columns]}, {"table": synthetic[columns]}, metadata, verbose=False)
    properties = report.get_properties()
    return {"overall": float(report.get_score()),
            "properties": {str(r["Property"]): float(r["Score"]) for _, r in properties.iterrows()}}
