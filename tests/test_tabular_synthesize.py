"""End-to-end ``synthesize`` / ``Synthesizer``: schema, ledger, budget split, leakage, save."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import BudgetExceededError, InvalidBudgetError, Ledger, PrivacyBudget
from dpsynth.release import OutputExistsError
from dpsynth.tabular import Synthesizer, synthesize
from dpsynth.tabular.plan import PREPROCESSING_FRACTION
from dpsynth.tabular.schema import UnknownColumnError

FAST = {
    "independent": {},
    "mst": {"iters": 150},
    "aim": {"max_rounds": 4, "round_iters": 30, "final_iters": 150, "max_order": 2},
}


def make_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    return pd.DataFrame(
        {
            "age": age,
            "income": np.where(age > 45, rng.normal(70000, 9000, n), rng.normal(40000, 9000, n)),
            "sex": rng.choice(["F", "M"], n),
            "city": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "member": rng.random(n) < 0.3,
            "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
        }
    )


META = {
    "columns": {
        "age": {"type": "numerical", "lower": 18, "upper": 80, "integer": True, "bins": 8},
        "income": {"type": "numerical", "lower": 0, "upper": 120000, "bins": 8},
        "sex": {"type": "categorical", "categories": ["F", "M"]},
        "city": {"type": "categorical", "categories": ["north", "south", "east"]},
        "member": {"type": "boolean"},
        "joined": {"type": "datetime", "lower": "2020-01-01", "upper": "2023-01-01", "bins": 6},
    },
    "row_count": 1500,
}


def charges(ledger: Ledger) -> list[dict]:
    return ledger.charges()


@pytest.fixture(scope="module")
def fitted():
    """One fit per method on the same table (epsilon=3), shared by the tests below."""
    df = make_table()[["age", "income", "sex", "joined"]]
    meta = {"columns": {c: META["columns"][c] for c in df.columns}, "row_count": META["row_count"]}
    out = {}
    for method in ("independent", "mst", "aim"):
        out[method] = synthesize(df, epsilon=3.0, delta=1e-6, method=method, metadata=meta, seed=1, progress=False,
                                 method_options=FAST[method])
    return df, meta, out


@pytest.mark.parametrize("method", ["independent", "mst", "aim"])
def test_each_method_keeps_the_schema_and_the_budget(fitted, method):
    df, _, results = fitted
    res = results[method]
    assert list(res.data.columns) == list(df.columns)
    assert len(res.data) == META["row_count"]
    assert str(res.data["age"].dtype) == "int64"  # declared without nullable: non-null form
    assert res.data["income"].dtype == np.float64
    assert pd.api.types.is_datetime64_any_dtype(res.data["joined"])
    assert set(res.data["sex"].dropna()) <= {"F", "M"}
    assert res.ledger.epsilon_spent <= 3.0
    assert res.ledger.delta_spent <= 1e-6
    assert [c["operation"] for c in charges(res.ledger)] == [f"tabular.fit.{method}"]
    assert res.method == method
    kinds = [e["kind"] for e in res.ledger.entries]
    assert kinds == ["charge", "completion", "postprocessing"]


def test_marginal_methods_beat_independent_on_a_dependent_pair(fitted):
    from dpsynth.tabular.encoding import TableEncoder
    from dpsynth.tabular.quality import tvd_summary
    from dpsynth.tabular.schema import resolve_schema

    df, meta, results = fitted
    enc = TableEncoder.from_schema(resolve_schema(df, meta))
    pair = ["age", "income"]  # income depends strongly on age; the other pairs are independent
    sub = TableEncoder.from_schema(resolve_schema(df[pair], {"columns": {c: META["columns"][c] for c in pair}}))
    scores = {m: tvd_summary(df[pair], r.data[pair], sub, orders=(2,))["tvd_2way"] for m, r in results.items()}
    assert scores["mst"] < 0.8 * scores["independent"]
    assert scores["aim"] < 0.8 * scores["independent"]
    overall = {m: tvd_summary(df, r.data, enc, orders=(1, 2)) for m, r in results.items()}
    for m, summary in overall.items():
        assert summary["tvd_1way"] < 0.1, (m, summary)


def test_dp_domain_stage_and_method_add_up_to_the_budget():
    df = make_table()
    meta = {"columns": {"sex": META["columns"]["sex"], "city": META["columns"]["city"]}}  # no bounds, no row count
    res = synthesize(df, epsilon=2.0, delta=1e-5, method="independent", metadata=meta, seed=3, progress=False)
    entries = charges(res.ledger)
    assert [e["operation"] for e in entries] == ["tabular.domain", "tabular.fit.independent"]
    domain, fit = (e["charge"] for e in entries)
    assert domain["epsilon"] <= 2.0 * PREPROCESSING_FRACTION * (1 + 1e-9)
    assert domain["delta"] == pytest.approx(1e-5 * PREPROCESSING_FRACTION)
    assert fit["epsilon"] <= 2.0 * (1 - PREPROCESSING_FRACTION) * (1 + 1e-9)
    assert domain["epsilon"] + fit["epsilon"] <= 2.0
    assert domain["delta"] + fit["delta"] <= 1e-5 * (1 + 1e-12)
    assert math.isclose(res.ledger.epsilon_spent, domain["epsilon"] + fit["epsilon"])
    stage_names = [s["name"] for s in entries[0]["stages"]]
    assert stage_names == ["row_count", "values"]
    # The released domain is public and recorded; the output respects it.
    assert res.schema["age"].has_bounds and res.schema["joined"].has_bounds
    out_age = res.data["age"].dropna()
    assert out_age.between(res.schema["age"].lower, res.schema["age"].upper).all()
    assert len(res.data) != len(df) or True  # DP row count: any positive value is allowed
    completion = [e for e in res.ledger.entries if e["kind"] == "completion"][0]
    assert completion["outputs"]["dp_row_count"] == len(res.data)


def test_undeclared_categories_are_discovered_with_dp_without_rare_values():
    from dpsynth.accounting import verify_text

    df = make_table(3000)
    df.loc[0, "city"] = "ONLY_ONCE"
    df.loc[1:2, "city"] = "TWICE"
    meta = {"columns": {k: v for k, v in META["columns"].items() if k != "city"}, "row_count": 3000}
    meta["columns"]["city"] = {"type": "categorical"}  # type public, categories left to DP
    res = synthesize(df, epsilon=2.0, method="independent", metadata=meta, seed=4, progress=False)
    entries = charges(res.ledger)
    assert [s["name"] for s in entries[0]["stages"]] == ["values"]
    assert entries[0]["stages"][0]["event"]["type"] == "ApproxDpEvent"
    cats = set(res.schema["city"].categories)
    assert {"north", "south", "east"} <= cats
    assert "ONLY_ONCE" not in cats and "TWICE" not in cats
    assert "ONLY_ONCE" not in set(res.data["city"].dropna())
    assert set(res.data["city"].dropna()) <= cats | {res.schema["city"].other_label}
    assert res.ledger.epsilon_spent <= 2.0
    assert verify_text(res.ledger.to_json()).ok


def test_rare_category_and_outliers_never_leak_with_public_metadata():
    df = make_table()
    df.loc[0, "city"] = "ONLY_ONCE"
    df.loc[1, "income"] = 9_999_999.0
    df.loc[2, "age"] = 150
    synth = Synthesizer(epsilon=5.0, method="independent", metadata=META, seed=0, progress=False).fit(df)
    for _ in range(3):
        data = synth.sample(5000).data
        assert "ONLY_ONCE" not in set(data["city"].dropna())
        assert data["income"].max() <= 120000
        assert data["age"].max() <= 80


def test_budget_exceeded_is_raised_before_any_charge():
    df = make_table(100)
    ledger = Ledger.create(PrivacyBudget(0.5, 1e-6), privacy_unit="row", source_name="t")
    with pytest.raises(BudgetExceededError):
        synthesize(df, epsilon=1.0, method="independent", metadata=META, ledger=ledger, progress=False)
    assert ledger.entries == []


def test_existing_ledger_is_charged_across_calls_until_exhausted():
    df = make_table(300)
    meta = dict(META, row_count=300)
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="t")
    synthesize(df, epsilon=0.5, delta=5e-7, method="independent", metadata=meta, ledger=ledger, progress=False)
    synthesize(df, epsilon=0.5, delta=5e-7, method="independent", metadata=meta, ledger=ledger, progress=False)
    assert ledger.epsilon_spent <= 1.0
    n_entries = len(ledger.entries)
    with pytest.raises(BudgetExceededError):
        synthesize(df, epsilon=0.1, delta=1e-8, method="independent", metadata=meta, ledger=ledger, progress=False)
    assert len(ledger.entries) == n_entries


@pytest.mark.parametrize(
    "epsilon,delta",
    [(0.0, 1e-6), (-1.0, 1e-6), (float("nan"), 1e-6), (float("inf"), 1e-6), (1.0, 0.0), (1.0, 1.0), (1.0, float("nan"))],
)
def test_invalid_budgets_are_refused(epsilon, delta):
    with pytest.raises(InvalidBudgetError):
        synthesize(make_table(50), epsilon=epsilon, delta=delta, metadata=META, method="independent", progress=False)


@pytest.mark.parametrize("method", ["independent", "mst", "aim"])
def test_no_refusal_depends_on_the_number_of_rows(method):
    """0, 1 and 2 rows are neighbours: each must release (noise), none may be refused."""
    for n in (0, 1, 2):
        result = synthesize(make_table(10).iloc[:n], epsilon=1.0, metadata=META, method=method, progress=False)
        assert len(result.data) == META["row_count"] and result.ledger.epsilon_spent <= 1.0


def test_bad_tables_and_metadata_are_clear_errors():
    with pytest.raises(UnknownColumnError):
        synthesize(make_table(10), epsilon=1.0, metadata={"columns": {"zzz": {"type": "boolean"}}})
    with pytest.raises(ValueError, match="rows"):
        synthesize(make_table(10), epsilon=1.0, rows=0, metadata=META)
    with pytest.raises(TypeError):
        synthesize([[1, 2]], epsilon=1.0)


def test_sampling_more_is_free_post_processing_and_the_seed_does_not_fix_the_noise():
    df = make_table(500)
    meta = dict(META, row_count=500)
    synth = Synthesizer(epsilon=1.0, method="independent", metadata=meta, seed=9, progress=False).fit(df)
    spent = synth.ledger.epsilon_spent
    a = synth.sample(50)
    b = synth.sample(2000)
    assert len(a.data) == 50 and len(b.data) == 2000
    assert synth.ledger.epsilon_spent == spent
    post = [e for e in synth.ledger.entries if e["kind"] == "postprocessing"]
    assert len(post) == 2 and all(e["charge"]["epsilon"] == 0.0 for e in post)
    # the seed drives only post-processing: a refit with the same seed draws fresh privacy noise,
    # so a published or guessed seed cannot be used to strip the noise
    refits = [Synthesizer(epsilon=1.0, method="independent", metadata=meta, seed=9, progress=False).fit(df) for _ in range(2)]
    marginals = [r.model_.sample(4000, np.random.default_rng(0)) for r in refits]
    assert not np.array_equal(marginals[0], marginals[1])
    with pytest.raises(RuntimeError):
        Synthesizer(epsilon=1.0).sample(3)


def test_no_seed_or_private_count_in_the_ledger():
    df = make_table(437)
    res = synthesize(df, epsilon=1.0, method="independent", metadata=dict(META, row_count=400), seed=123456789,
                     progress=False)
    values = []

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                values.append(k)
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        else:
            values.append(obj)

    walk(json.loads(res.ledger.to_json()))
    assert 123456789 not in values and "123456789" not in values
    assert 437 not in values and "437" not in values  # the private row count is never written
    assert len(res.data) == 400


def test_save_writes_data_ledger_card_and_refuses_overwrite(tmp_path):
    from dpsynth.accounting import verify_text

    res = synthesize(make_table(300), epsilon=1.0, method="independent", metadata=dict(META, row_count=300),
                     seed=0, progress=False)
    out = tmp_path / "synthetic.csv"
    paths = res.save(out)
    assert out.exists() and paths.ledger.exists() and paths.card.exists()
    back = pd.read_csv(out)
    assert list(back.columns) == list(res.data.columns) and len(back) == 300
    ledger = Ledger.load(paths.ledger)
    assert ledger.epsilon_spent <= 1.0
    report = verify_text(paths.ledger.read_text())
    assert report.ok, report.problems
    before = out.read_bytes()
    with pytest.raises(OutputExistsError):
        res.save(out)
    assert out.read_bytes() == before
    res.save(out, force=True)
    res.save(tmp_path / "synthetic.jsonl")
    assert len(pd.read_json(tmp_path / "synthetic.jsonl", lines=True)) == 300
    with pytest.raises(ValueError, match="format"):
        res.save(tmp_path / "synthetic.xlsx")


def test_no_value_refuses_a_run_and_non_nullable_columns_output_no_missing_values():
    df = make_table(300)
    df.loc[3, "sex"] = None
    df.loc[4, "sex"] = "not a listed sex"
    df["age"] = df["age"].astype(object)
    df.loc[5, "age"] = "abc"
    meta = json.loads(json.dumps(META))
    meta["row_count"] = 300
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-6), privacy_unit="row", source_name="t")
    res = synthesize(df, epsilon=1.0, method="independent", metadata=meta, ledger=ledger, progress=False)
    assert not res.data[["sex", "age"]].isna().any().any()
    assert set(res.data["sex"]) <= {"F", "M"}


def test_exhausted_ledger_answers_the_same_whatever_the_data():
    """The budget check comes before every data-dependent check (issue 8 section 4)."""
    ledger = Ledger.create(PrivacyBudget(0.5, 1e-6), privacy_unit="row", source_name="t")
    tables = [make_table(100), make_table(100).iloc[:1], make_table(100).iloc[:0]]
    odd = make_table(100)
    odd["age"] = odd["age"].astype(object)
    odd.loc[0, "age"] = "abc"
    tables.append(odd)
    messages = set()
    for df in tables:
        with pytest.raises(BudgetExceededError) as info:
            synthesize(df, epsilon=1.0, method="independent", metadata=META, ledger=ledger, progress=False)
        messages.add(str(info.value))
    assert len(messages) == 1 and ledger.entries == []


def test_errors_before_the_charge_carry_no_counts_or_values():
    """Pre-charge errors name only public things (columns, arguments), never counts or values."""
    df = make_table(137)
    df.loc[0, "city"] = "SECRET_CITY"
    for bad in ({"columns": {"zzz": {"type": "boolean"}}}, {"columns": {"age": {"type": "numerical", "lower": 5}}}):
        with pytest.raises(Exception) as info:
            synthesize(df, epsilon=1.0, metadata=bad, method="independent", progress=False)
        text = str(info.value)
        assert "137" not in text and "SECRET_CITY" not in text


def test_identifier_like_text_column_is_reported_from_dp_outputs_not_refused():
    from dpsynth.tabular.diagnostics import DegenerateColumnWarning

    df = make_table(1500)
    df["name"] = [f"person {i}" for i in range(len(df))]
    meta = {"columns": {k: v for k, v in META["columns"].items()}, "row_count": 1500}
    with pytest.warns(DegenerateColumnWarning, match="name"):
        res = synthesize(df, epsilon=2.0, metadata=meta, method="independent", progress=False)
    issue = [i for i in res.issues if i.column == "name"]
    assert issue and issue[0].kind == "collapsed" and "type: id" in issue[0].hint
    assert set(res.data["name"]) == {"__other__"}
