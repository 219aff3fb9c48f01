"""The plan's event is what fit() does: every measurement and selection is counted against the plan."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from dp_accounting import dp_event

from dpsynth.accounting.accountants import compute_charge
from dpsynth.errors import DpsynthError
from dpsynth.tabular._accounting import ExponentialMechanismDpEvent
from dpsynth.tabular.methods import UnknownMethodError
from dpsynth.tabular.methods.aim import AIMMethod, FilterExhaustedError, em_rho, gaussian_rho, run_aim
from dpsynth.tabular.methods.base import EncodedDomain
from dpsynth.tabular.methods.mst import MSTMethod, compress_mapping, merge_measurement
from dpsynth.tabular.methods.workload import WorkloadError


class RecordingRng:
    """Wraps a Generator and records every noise draw (Gaussian scales, Gumbel draws)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self.normal_scales: list[float] = []
        self.gumbel_calls = 0

    def normal(self, loc=0.0, scale=1.0, size=None):
        self.normal_scales.append(float(scale))
        return self._rng.normal(loc, scale, size)

    def gumbel(self, *args, **kwargs):
        self.gumbel_calls += 1
        return self._rng.gumbel(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._rng, name)


def table(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, EncodedDomain]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, n)
    b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 4, n))
    c = rng.integers(0, 3, n)
    y = np.where(rng.random(n) < 0.7, (a + c) % 2, rng.integers(0, 2, n))
    rare = np.where(rng.random(n) < 0.97, 0, rng.integers(1, 30, n))  # many rare values: merged
    return np.stack([a, b, c, y, rare], axis=1), EncodedDomain(("a", "b", "c", "y", "rare"), (4, 4, 3, 2, 30))


def test_mst_fit_makes_exactly_the_plans_releases():
    codes, dom = table()
    method = MSTMethod(iters=300)
    plan = method.calibrate(1.0, 1e-6, dom, 3000.0)
    rng = RecordingRng(1)
    model = method.fit(codes, plan, rng, progress=False)
    p = plan.parameters
    d = len(dom.columns)
    assert rng.normal_scales == [p["sigma_1way"]] * d + [p["sigma_2way"]] * (d - 1)
    assert rng.gumbel_calls == d - 1
    rebuilt = dp_event.ComposedDpEvent([
        dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(s), sum(1 for k, x in model.releases if k == "gaussian" and x == s))
        for s in (p["sigma_1way"],)
    ] + [
        dp_event.SelfComposedDpEvent(ExponentialMechanismDpEvent(p["epsilon_selection_per_step"]), sum(1 for k, _ in model.releases if k == "exponential")),
        dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(p["sigma_2way"]), sum(1 for k, x in model.releases if k == "gaussian" and x == p["sigma_2way"])),
    ])
    assert rebuilt == plan.event
    assert compute_charge(plan.event, 1e-6).epsilon <= 1.0


def test_mst_merges_rare_values_and_samples_them_back():
    codes, dom = table(6000)
    method = MSTMethod(iters=300)
    plan = method.calibrate(2.0, 1e-6, dom, 6000.0)
    model = method.fit(codes, plan, np.random.default_rng(2), progress=False)
    rare_map = model.mappings[dom.columns.index("rare")]
    assert rare_map.max() + 1 < 30  # rare values were merged
    assert rare_map[0] != rare_map[29]  # the common value keeps its own code
    synth = model.sample(6000, np.random.default_rng(3))
    assert synth[:, 4].max() < 30 and len(np.unique(synth[:, 4])) > 5  # merged values drawn back out
    assert abs(np.mean(synth[:, 4] == 0) - np.mean(codes[:, 4] == 0)) < 0.03
    assert model.total == pytest.approx(6000, rel=0.1)  # the pre-merge total, not mbi's 1.0


def test_compress_mapping_and_merged_noise():
    sigma = 2.0
    noisy = np.array([100.0, 5.0, 4.0, 50.0, -1.0])
    m = compress_mapping(noisy, sigma)
    assert list(m) == [0, 2, 2, 1, 2]
    y, s = merge_measurement(noisy, sigma, m)
    assert np.allclose(y, [100.0, 50.0, 8.0])
    assert np.allclose(s, [2.0, 2.0, 2.0 * np.sqrt(3)])
    assert list(compress_mapping(np.array([100.0, 1.0, 90.0]), sigma)) == [0, 1, 2]  # one small value: no merge


def test_mst_keeps_the_target_with_its_partners():
    codes, dom = table(4000)
    method = MSTMethod(iters=200, target="y", target_degree=2)
    plan = method.calibrate(3.0, 1e-6, dom, 4000.0)
    assert plan.parameters["target"] == "y"
    model = method.fit(codes, plan, RecordingRng(0), progress=False)
    assert sum("y" in e for e in model.cliques) >= 2
    with pytest.raises(WorkloadError):
        MSTMethod(target="nope").calibrate(1.0, 1e-6, dom, 10.0)


def test_aim_filter_log_matches_the_noise_it_drew():
    codes, dom = table()
    plan = AIMMethod(max_order=2, max_rounds=12, round_iters=100, final_iters=200).calibrate(1.0, 1e-6, dom, 3000.0)
    rng = RecordingRng(4)
    model = AIMMethod().fit(codes, plan, rng, progress=False)
    measures = [r for w, r in model.filter_log if w.startswith("measure")]
    selects = [r for w, r in model.filter_log if w == "select"]
    assert [gaussian_rho(s) for s in rng.normal_scales] == pytest.approx(measures)
    assert rng.gumbel_calls == len(selects)
    assert sum(measures) + sum(selects) == pytest.approx(plan.parameters["rho"], rel=1e-9)
    assert isinstance(plan.event, dp_event.ZCDpEvent) and plan.event.rho == plan.parameters["rho"]


def test_aim_max_time_stops_early_and_still_spends_exactly_rho():
    codes, dom = table()
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731  one "second" per clock read
    kwargs = dict(rho=0.5, rounds=40, max_order=2, max_cells=1000, max_model_size=1.0, round_iters=50,
                  final_iters=100, rng=np.random.default_rng(0), progress=False)
    free = run_aim(codes, dom, **kwargs)
    timed = run_aim(codes, dom, max_time=20.0, clock=clock, **kwargs)
    assert timed.stopped_by_time and not free.stopped_by_time
    assert timed.rounds_run < free.rounds_run
    assert sum(r for _, r in timed.filter_log) == pytest.approx(0.5, rel=1e-9)


def test_aim_target_weights_and_workload_are_public_plan_parameters():
    _, dom = table()
    plan = AIMMethod(target="y", workload=[["a", "y"], ("c", "b"), ["a", "y"]]).calibrate(1.0, 1e-6, dom, 100.0)
    assert plan.parameters["target"] == "y"
    assert plan.parameters["workload"] == [["a", "y"], ["b", "c"]]
    for bad in ([["a", "zz"]], [["a", "a"]], [], "ab"):
        with pytest.raises(WorkloadError):
            AIMMethod(workload=bad).calibrate(1.0, 1e-6, dom, 100.0)
    with pytest.raises(ValueError):
        AIMMethod(max_time=0)


def test_method_errors_are_dpsynth_errors():
    assert issubclass(FilterExhaustedError, DpsynthError) and issubclass(FilterExhaustedError, RuntimeError)
    assert issubclass(UnknownMethodError, DpsynthError) and issubclass(UnknownMethodError, ValueError)
    assert issubclass(WorkloadError, DpsynthError) and issubclass(WorkloadError, ValueError)
    assert em_rho(2.0) == 0.5


def test_auto_rule_is_a_function_of_public_shape_only():
    import inspect

    from dpsynth.tabular.methods import (
        AUTO_AIM_MAX_COLUMNS,
        AUTO_MST_MAX_COLUMNS,
        MethodTooLargeError,
        auto_method,
        resolve_method_name,
    )

    assert list(inspect.signature(auto_method).parameters) == ["n_columns", "sizes"]
    adult_sizes = (16, 9, 11, 17, 17, 8, 15, 7, 6, 2, 11, 11, 11, 22, 2)
    assert auto_method(15, adult_sizes) == "aim"
    assert auto_method(16, (20,) * 16) == "mst"  # AIM's candidates would hold 4.5M cells
    assert auto_method(AUTO_AIM_MAX_COLUMNS + 1) == "mst"
    assert auto_method(AUTO_MST_MAX_COLUMNS + 1) == "independent"
    assert resolve_method_name("auto", 2000) == "independent"
    with pytest.raises(MethodTooLargeError, match="1,999,000 exact pair marginals"):
        resolve_method_name("mst", 2000)
    assert issubclass(MethodTooLargeError, DpsynthError)


def test_auto_choice_does_not_depend_on_the_rows():
    import pandas as pd

    from dpsynth.tabular import Synthesizer

    rng = np.random.default_rng(0)
    cols = [f"c{i}" for i in range(20)]
    metadata = {"columns": {c: {"type": "categorical", "categories": ["x", "y", "z"]} for c in cols}, "row_count": 300}
    chosen = set()
    for n in (300, 301):
        df = pd.DataFrame({c: rng.choice(["x", "y", "z"], n) for c in cols})
        synth = Synthesizer(epsilon=1.0, method="auto", metadata=metadata, seed=0, progress=False,
                            method_options={}).fit(df)
        chosen.add(synth.method_)
    assert chosen == {"mst"}
