"""Tests of the DP-SGD toolkit (``dpsynth.tabular.methods._dpsgd``) and its VAE and GAN methods.

Statistical tests use fixed seeds for the test's own randomness and tolerances of several standard
errors, so they are deterministic and still fail when the mechanism is wrong.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from opacus import GradSampleModule
from scipy import stats
from torch import nn

from dpsynth.tabular.methods import _dpsgd, dpsgd_gan, dpsgd_vae
from dpsynth.tabular.methods._dpsgd import (
    DPSGDMethod,
    dpsgd_event,
    dpsgd_schedule,
    make_dp_optimizer,
    poisson_sample_indices,
    sample_codes_from_logits,
)
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan, TabularMethod
from dpsynth.tabular.methods.dpsgd_vae import DPSGDVAEMethod

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _correlated_table(n: int, k: int, rng: np.random.Generator, agree: float = 0.9) -> np.ndarray:
    a = rng.integers(0, k, n)
    b = np.where(rng.random(n) < agree, a, rng.integers(0, k, n))
    return np.stack([a, b], axis=1)


def _joint(codes: np.ndarray, k: int) -> np.ndarray:
    table = np.zeros((k, k))
    np.add.at(table, (codes[:, 0], codes[:, 1]), 1.0)
    return table / table.sum()


def _independent_epsilons(event: dp_event.DpEvent, delta: float) -> tuple[float, float]:
    """(RDP, PLD) epsilons computed with dp-accounting directly, not through dpsynth."""
    rdp = rdp_privacy_accountant.RdpAccountant()
    rdp.compose(event)
    pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(event)
    return rdp.get_epsilon(delta), pld.get_epsilon(delta)


DOMAIN2 = EncodedDomain(columns=("a", "b"), sizes=(4, 4))


# ------------------------------------------------------------------------------------------
# Planning / accounting
# ------------------------------------------------------------------------------------------


def test_method_satisfies_the_protocol() -> None:
    method = DPSGDVAEMethod()
    assert isinstance(method, TabularMethod)
    assert method.name == "dpsgd_vae"


def test_schedule_uses_public_constants_only() -> None:
    schedule = dpsgd_schedule(n_public=1000.0, expected_batch_size=50, epochs=3)
    assert schedule.sample_rate == pytest.approx(0.05)
    assert schedule.steps == 60  # 3 epochs / q
    assert schedule.normaliser == pytest.approx(50.0)
    fixed = dpsgd_schedule(n_public=1000.0, expected_batch_size=50, steps=17)
    assert fixed.steps == 17
    # more public rows than the batch: q capped at 1, normaliser capped at n_public
    small = dpsgd_schedule(n_public=20.0, expected_batch_size=50, steps=5)
    assert small.sample_rate == 1.0 and small.normaliser == pytest.approx(20.0)


def test_calibrated_event_meets_target_by_independent_accountants() -> None:
    epsilon, delta, n_public = 2.0, 1e-5, 2000.0
    method = DPSGDVAEMethod(expected_batch_size=100, epochs=5)
    plan = method.calibrate(epsilon, delta, DOMAIN2, n_public)
    assert plan.method == "dpsgd_vae" and plan.sampling == "poisson" and plan.delta == delta
    sigma = plan.parameters["noise_multiplier"]
    expected_event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(100 / 2000, dp_event.GaussianDpEvent(sigma)), 100
    )
    assert plan.event == expected_event
    eps_rdp, eps_pld = _independent_epsilons(plan.event, delta)
    assert min(eps_rdp, eps_pld) <= epsilon + 1e-9
    assert eps_pld <= eps_rdp + 1e-6  # PLD is the tighter bound here; both are valid
    # the calibration is tight: 5% less noise would overspend
    weaker = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(100 / 2000, dp_event.GaussianDpEvent(0.95 * sigma)), 100
    )
    assert min(_independent_epsilons(weaker, delta)) > epsilon


@pytest.mark.parametrize(
    "epsilon, delta", [(0.0, 1e-5), (float("nan"), 1e-5), (float("inf"), 1e-5), (-1.0, 1e-5), (1.0, 0.0), (1.0, 1.0)]
)
def test_calibrate_rejects_bad_budgets(epsilon: float, delta: float) -> None:
    with pytest.raises(ValueError):
        DPSGDVAEMethod().calibrate(epsilon, delta, DOMAIN2, 1000.0)


@pytest.mark.parametrize("n_public", [0.0, -5.0, float("nan"), float("inf")])
def test_calibrate_rejects_bad_public_row_count(n_public: float) -> None:
    with pytest.raises(ValueError):
        DPSGDVAEMethod().calibrate(1.0, 1e-5, DOMAIN2, n_public)


def test_default_plan_uses_public_rules_only() -> None:
    domain = EncodedDomain(columns=tuple("abcdefghi"), sizes=(3,) * 9)
    plan = DPSGDVAEMethod().plan_for_noise_multiplier(1.0, 1e-6, domain, n_public=10_000.0)
    assert plan.parameters["steps"] == 1000  # DEFAULT_STEPS, not a function of the data
    assert plan.parameters["max_grad_norm"] == pytest.approx(3.5 * 3.0)  # 3.5 * sqrt(9 columns)
    assert plan.parameters["sample_rate"] == pytest.approx(256 / 10_000)
    explicit = DPSGDVAEMethod(max_grad_norm=0.5, epochs=2).plan_for_noise_multiplier(1.0, 1e-6, domain, 10_000.0)
    assert explicit.parameters["max_grad_norm"] == 0.5 and explicit.parameters["steps"] == math.ceil(2 / 0.0256)
    # nothing that could identify the noise stream is recorded
    assert plan.parameters["privacy_noise_seed"] == "withheld"
    assert plan.parameters["batch_sampling_seed"] == "withheld"


def test_constructor_rejects_bad_hyper_parameters() -> None:
    for kwargs in ({"latent_dim": 0}, {"max_grad_norm": 0.0}, {"learning_rate": float("nan")},
                   {"expected_batch_size": 0}, {"steps": 0}, {"optimizer": "lbfgs"},
                   {"steps": 10, "epochs": 2.0}, {"lr_schedule": "warmup"}, {"hidden_sizes": (0,)}):
        with pytest.raises(ValueError):
            DPSGDVAEMethod(**kwargs)


# ------------------------------------------------------------------------------------------
# Mechanism pieces: Poisson sampling, clipping, noise, normalisation
# ------------------------------------------------------------------------------------------


def test_poisson_batch_sizes_have_binomial_mean_and_variance() -> None:
    rng = np.random.default_rng(1)
    n, q, draws = 1000, 0.03, 4000
    sizes = np.array([len(poisson_sample_indices(n, q, rng)) for _ in range(draws)])
    mean, var = n * q, n * q * (1 - q)
    assert abs(sizes.mean() - mean) < 5 * math.sqrt(var / draws)
    assert abs(sizes.var(ddof=1) - var) < 5 * var * math.sqrt(2 / draws)
    # batch sizes really vary (a fixed batch size would have variance 0)
    assert sizes.min() < mean - 5 and sizes.max() > mean + 5


def test_poisson_rows_included_independently_and_empty_batches_occur() -> None:
    rng = np.random.default_rng(2)
    n, q, draws = 50, 0.02, 5000
    inclusion = np.zeros((draws, n), dtype=bool)
    for t in range(draws):
        inclusion[t, poisson_sample_indices(n, q, rng)] = True
    per_row = inclusion.mean(axis=0)
    assert np.all(np.abs(per_row - q) < 5 * math.sqrt(q * (1 - q) / draws))
    empty = (inclusion.sum(axis=1) == 0).mean()
    p_empty = (1 - q) ** n
    assert abs(empty - p_empty) < 5 * math.sqrt(p_empty * (1 - p_empty) / draws)
    # pairwise independence of rows 0 and 1
    both = (inclusion[:, 0] & inclusion[:, 1]).mean()
    assert abs(both - q * q) < 5 * math.sqrt(q * q / draws) + 1e-4


def _linear_dp_step(
    x: torch.Tensor, noise_multiplier: float, max_grad_norm: float, normaliser: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DP-SGD step (SGD, lr 1) on ``loss = sum_i w . x_i``: per-sample gradient of row i is x_i."""
    layer = nn.Linear(x.shape[1], 1, bias=False)
    model = GradSampleModule(layer, batch_first=True, loss_reduction="sum")
    before = layer.weight.detach().clone()
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_dp_optimizer(
        model.parameters(),
        learning_rate=1.0,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        normaliser=normaliser,
        generator=generator,
        optimizer="sgd",
    )
    optimizer.zero_grad()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        model(x).sum().backward()
    optimizer.step()
    return before, layer.weight.detach().clone()


def test_clipping_bound_and_public_normaliser_in_one_step() -> None:
    # rows with gradient norms 0.5, 3 and 10; C = 1; no noise; normaliser B = 8
    x = torch.tensor([[0.3, 0.4, 0.0], [0.0, 3.0, 0.0], [6.0, 0.0, 8.0]])
    before, after = _linear_dp_step(x, noise_multiplier=0.0, max_grad_norm=1.0, normaliser=8.0)
    clipped_sum = x[0] + x[1] / 3.0 + x[2] / 10.0
    update = (before - after).flatten()
    assert torch.allclose(update, clipped_sum / 8.0, atol=1e-5)
    # a single huge outlier moves the model by at most C / B
    before, after = _linear_dp_step(torch.tensor([[1e6, -1e6, 3e5]]), 0.0, 1.0, 8.0)
    assert (before - after).norm().item() <= 1.0 / 8.0 + 1e-6
    assert (before - after).norm().item() >= 0.99 / 8.0


def test_noise_std_matches_sigma_c_over_expected_batch() -> None:
    sigma, clip, normaliser, d = 1.3, 0.7, 20.0, 20000
    x = torch.zeros((5, d))  # zero per-sample gradients: the update is pure noise / B
    before, after = _linear_dp_step(x, sigma, clip, normaliser, seed=3)
    update = (after - before).flatten().numpy().astype(np.float64)
    expected_std = sigma * clip / normaliser
    assert abs(update.std(ddof=1) / expected_std - 1) < 0.03  # ~4 standard errors
    assert abs(update.mean()) < 5 * expected_std / math.sqrt(d)
    assert stats.kstest(update / expected_std, "norm").pvalue > 1e-3


def _recording_optimizer(monkeypatch: pytest.MonkeyPatch, records: list[dict], module: Any = _dpsgd) -> None:
    """Make ``fit`` build its optimizer as usual but record every step's internals (every DP-SGD
    method builds it through ``_dpsgd.make_dp_optimizer``)."""
    original = module.make_dp_optimizer

    def wrapped(*args, **kwargs):
        optimizer = original(*args, **kwargs)

        def hook(opt) -> None:
            flat_samples = [g.flatten(1) for g in opt.grad_samples]
            raw_norms = torch.cat(flat_samples, dim=1).norm(dim=1) if flat_samples[0].shape[0] else torch.zeros(0)
            factors = (opt.max_grad_norm / (raw_norms + 1e-6)).clamp(max=1.0)
            expected_sum = torch.cat([torch.einsum("i,ij->j", factors, g) for g in flat_samples])
            summed = torch.cat([p.summed_grad.flatten() for p in opt.params])
            grad = torch.cat([p.grad.flatten() for p in opt.params])
            records.append(
                {
                    "batch": len(raw_norms),
                    "raw_norms": raw_norms.detach(),
                    "clipped_norms": (raw_norms * factors).detach(),
                    "summed_matches_clipped": bool(torch.allclose(summed, expected_sum, atol=1e-5)),
                    "summed": summed.detach(),
                    "grad": grad.detach(),
                    "expected_batch_size": opt.expected_batch_size,
                    "noise_multiplier": opt.noise_multiplier,
                    "max_grad_norm": opt.max_grad_norm,
                }
            )

        optimizer.attach_step_hook(hook)
        return optimizer

    monkeypatch.setattr(module, "make_dp_optimizer", wrapped)


def test_fit_clips_and_normalises_by_public_constant_whatever_the_data_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    method = DPSGDVAEMethod(latent_dim=2, hidden_sizes=(8,), expected_batch_size=30, steps=25, max_grad_norm=0.05)
    plan = method.plan_for_noise_multiplier(0.0, 1e-5, DOMAIN2, n_public=300.0)  # no noise: exact checks
    rng = np.random.default_rng(0)
    by_size: dict[int, list[dict]] = {}
    for n_rows in (60, 600):
        records: list[dict] = []
        _recording_optimizer(monkeypatch, records)
        method.fit(_correlated_table(n_rows, 4, rng), plan, np.random.default_rng(1), progress=False)
        by_size[n_rows] = records
    for n_rows, records in by_size.items():
        assert len(records) == 25
        batches = np.array([r["batch"] for r in records])
        # q = 30 / 300 regardless of the private size: mean batch ~ 0.1 * n_rows
        assert abs(batches.mean() - 0.1 * n_rows) < 5 * math.sqrt(0.09 * n_rows / 25)
        for r in records:
            assert r["expected_batch_size"] == pytest.approx(30.0)
            assert r["max_grad_norm"] == pytest.approx(0.05) and r["noise_multiplier"] == 0.0
            assert r["summed_matches_clipped"]
            assert torch.all(r["clipped_norms"] <= 0.05 * (1 + 1e-5))
            # the update is exactly the clipped sum / 30, not / realised batch nor / n_rows
            assert torch.allclose(r["grad"] * 30.0, r["summed"], atol=1e-6)
    # clipping was active (raw gradients exceed C), so the bound check was not vacuous
    all_raw = torch.cat([r["raw_norms"] for records in by_size.values() for r in records])
    assert (all_raw > 0.05).float().mean() > 0.5
    # the realised batch size differs from the normaliser, so dividing by it would be detected
    assert {r["batch"] for r in by_size[60]} != {30}


def test_fit_handles_empty_poisson_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    method = DPSGDVAEMethod(latent_dim=2, hidden_sizes=(8,), expected_batch_size=1, steps=30)
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, DOMAIN2, n_public=1000.0)
    records: list[dict] = []
    _recording_optimizer(monkeypatch, records)
    fitted = method.fit(_correlated_table(20, 4, np.random.default_rng(0)), plan, np.random.default_rng(1), False)
    batches = [r["batch"] for r in records]
    assert len(batches) == 30 and batches.count(0) >= 20  # P(empty) = 0.999^20 ~ 0.98
    # an empty step still adds noise (the step is taken, not skipped)
    assert all(r["grad"].abs().sum() > 0 for r in records if r["batch"] == 0)
    assert fitted.sample(10, np.random.default_rng(2)).shape == (10, 2)


def test_privacy_noise_is_not_reproducible_from_the_user_seed() -> None:
    method = DPSGDVAEMethod(latent_dim=2, hidden_sizes=(8,), expected_batch_size=20, steps=3)
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, DOMAIN2, n_public=100.0)
    codes = _correlated_table(100, 4, np.random.default_rng(0))
    first = method.fit(codes, plan, np.random.default_rng(7), progress=False)
    second = method.fit(codes, plan, np.random.default_rng(7), progress=False)
    w1 = torch.cat([p.flatten() for p in first.decoder.parameters()])
    w2 = torch.cat([p.flatten() for p in second.decoder.parameters()])
    assert not torch.allclose(w1, w2)


# ------------------------------------------------------------------------------------------
# Fitted model and input validation
# ------------------------------------------------------------------------------------------


def test_sample_returns_codes_within_the_domain() -> None:
    domain = EncodedDomain(columns=("x", "y", "z"), sizes=(3, 1, 5))
    method = DPSGDVAEMethod(latent_dim=3, hidden_sizes=(8,), expected_batch_size=20, steps=3)
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, domain, n_public=100.0)
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 3, 100), np.zeros(100, dtype=int), rng.integers(0, 5, 100)], axis=1)
    fitted = method.fit(codes, plan, np.random.default_rng(1), progress=False)
    rows = fitted.sample(3000, np.random.default_rng(2))
    assert rows.shape == (3000, 3) and np.issubdtype(rows.dtype, np.integer)
    for j, k in enumerate(domain.sizes):
        assert rows[:, j].min() >= 0 and rows[:, j].max() < k
    assert set(np.unique(rows[:, 2])) == set(range(5))  # softmax puts mass on every code
    assert np.array_equal(rows, fitted.sample(3000, np.random.default_rng(2)))  # post-processing is seeded
    assert fitted.sample(0, np.random.default_rng(3)).shape == (0, 3)
    with pytest.raises(ValueError):
        fitted.sample(-1, np.random.default_rng(3))


def test_sample_codes_from_logits_matches_softmax() -> None:
    logits = np.tile(np.log(np.array([[0.2, 0.5, 0.3, 0.6, 0.4]])), (20000, 1))
    rows = sample_codes_from_logits(logits, (3, 2), np.random.default_rng(0))
    freq0 = np.bincount(rows[:, 0], minlength=3) / 20000
    freq1 = np.bincount(rows[:, 1], minlength=2) / 20000
    assert np.allclose(freq0, [0.2, 0.5, 0.3], atol=0.015)
    assert np.allclose(freq1, [0.6, 0.4], atol=0.015)


def test_fit_rejects_bad_codes_and_mismatched_plans() -> None:
    method = DPSGDVAEMethod(latent_dim=2, hidden_sizes=(8,), expected_batch_size=10, steps=2)
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, DOMAIN2, n_public=100.0)
    rng = np.random.default_rng(0)
    good = _correlated_table(30, 4, rng)
    bad_inputs = [
        np.empty((0, 2), dtype=int),  # empty
        good[:, :1],  # missing column
        np.where(good == 3, 4, good),  # code outside the public domain
        -good,  # negative codes
        good.astype(float) + 0.5,  # not integer codes
        good[:, 0],  # 1-D
    ]
    for codes in bad_inputs:
        with pytest.raises(ValueError):
            method.fit(codes, plan, rng, progress=False)
    tampered = MethodPlan(
        method=plan.method,
        event=dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(100.0)), 2
        ),  # claims more noise than the parameters use
        delta=plan.delta,
        parameters=plan.parameters,
        sampling=plan.sampling,
    )
    other_method = MethodPlan("mst", plan.event, plan.delta, plan.parameters, "poisson")
    not_poisson = MethodPlan(plan.method, plan.event, plan.delta, plan.parameters, "none")
    for wrong in (tampered, other_method, not_poisson):
        with pytest.raises(ValueError):
            method.fit(good, wrong, rng, progress=False)


# ------------------------------------------------------------------------------------------
# Utility sanity check (non-private regime)
# ------------------------------------------------------------------------------------------


def test_vae_learns_correlation_better_than_independence() -> None:
    k, n = 4, 2000
    codes = _correlated_table(n, k, np.random.default_rng(0), agree=0.9)
    method = DPSGDVAEMethod(steps=300)  # default architecture, clipping and optimiser
    plan = method.plan_for_noise_multiplier(0.01, 1e-5, DOMAIN2, n_public=float(n))  # tiny noise
    fitted = method.fit(codes, plan, np.random.default_rng(1), progress=False)
    synthetic = fitted.sample(20000, np.random.default_rng(2))
    truth = _joint(codes, k)
    independent = np.outer(truth.sum(axis=1), truth.sum(axis=0))
    tvd_synthetic = 0.5 * np.abs(_joint(synthetic, k) - truth).sum()
    tvd_independent = 0.5 * np.abs(independent - truth).sum()
    assert tvd_independent > 0.6
    assert tvd_synthetic < 0.5 * tvd_independent


def test_dp_trained_vae_at_epsilon_3_still_beats_independence() -> None:
    """The real private path (calibrated noise, default clipping) keeps most of the correlation."""
    k, n = 4, 5000
    codes = _correlated_table(n, k, np.random.default_rng(5), agree=0.9)
    method = DPSGDVAEMethod(steps=500)
    plan = method.calibrate(3.0, 1e-5, DOMAIN2, n_public=float(n))
    assert plan.parameters["noise_multiplier"] > 0.5  # genuinely noisy
    fitted = method.fit(codes, plan, np.random.default_rng(6), progress=False)
    synthetic = fitted.sample(20000, np.random.default_rng(7))
    truth = _joint(codes, k)
    independent = np.outer(truth.sum(axis=1), truth.sum(axis=0))
    tvd_synthetic = 0.5 * np.abs(_joint(synthetic, k) - truth).sum()
    assert tvd_synthetic < 0.6 * 0.5 * np.abs(independent - truth).sum()


# ------------------------------------------------------------------------------------------
# DP-CTGAN-style GAN (dpsgd_gan): same accounting, DP-SGD on the discriminator only
# ------------------------------------------------------------------------------------------


def test_gan_calibrated_event_meets_target_by_independent_accountants() -> None:
    method = dpsgd_gan.DPSGDGANMethod(expected_batch_size=50, steps=40)
    plan = method.calibrate(1.0, 1e-5, DOMAIN2, n_public=1000.0)
    assert plan.method == "dpsgd_gan" and plan.sampling == "poisson"
    sigma = plan.parameters["noise_multiplier"]
    assert plan.event == dpsgd_event(0.05, sigma, 40)
    assert min(_independent_epsilons(plan.event, 1e-5)) <= 1.0 + 1e-9
    assert min(_independent_epsilons(dpsgd_event(0.05, 0.95 * sigma, 40), 1e-5)) > 1.0
    assert isinstance(method, TabularMethod)


def test_gan_discriminator_clips_and_normalises_by_public_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    method = dpsgd_gan.DPSGDGANMethod(
        latent_dim=4, hidden_sizes=(8,), discriminator_hidden_sizes=(8,), expected_batch_size=20, steps=20,
        max_grad_norm=0.01,
    )
    plan = method.plan_for_noise_multiplier(0.0, 1e-5, DOMAIN2, n_public=200.0)
    rng = np.random.default_rng(0)
    means = {}
    for n_rows in (40, 400):
        records: list[dict] = []
        _recording_optimizer(monkeypatch, records)
        method.fit(_correlated_table(n_rows, 4, rng), plan, np.random.default_rng(1), progress=False)
        assert len(records) == 20  # one DP step per discriminator update, none for the generator
        for r in records:
            # 20 expected real rows + 20 fake rows: the public normaliser is 40
            assert r["expected_batch_size"] == pytest.approx(40.0)
            assert r["summed_matches_clipped"]
            assert torch.all(r["clipped_norms"] <= 0.01 * (1 + 1e-5))
            assert torch.allclose(r["grad"] * 40.0, r["summed"], atol=1e-7)
        means[n_rows] = np.mean([r["batch"] - 20 for r in records])  # real rows per step
    # real rows are Poisson at q = 0.1 of the private table, whatever its size
    assert abs(means[40] - 4) < 5 * math.sqrt(3.6 / 20)
    assert abs(means[400] - 40) < 5 * math.sqrt(36 / 20)


def test_gan_samples_within_domain_and_rejects_foreign_plans() -> None:
    domain = EncodedDomain(columns=("x", "y"), sizes=(3, 6))
    method = dpsgd_gan.DPSGDGANMethod(latent_dim=4, hidden_sizes=(8,), discriminator_hidden_sizes=(8,),
                                      expected_batch_size=5, steps=5)
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, domain, n_public=1000.0)  # mostly empty batches
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 3, 60), rng.integers(0, 6, 60)], axis=1)
    fitted = method.fit(codes, plan, np.random.default_rng(1), progress=False)
    rows = fitted.sample(2000, np.random.default_rng(2))
    assert rows.shape == (2000, 2)
    assert rows[:, 0].min() >= 0 and rows[:, 0].max() < 3 and rows[:, 1].min() >= 0 and rows[:, 1].max() < 6
    vae_plan = DPSGDVAEMethod(steps=5).plan_for_noise_multiplier(1.0, 1e-5, domain, 1000.0)
    with pytest.raises(ValueError):
        method.fit(codes, vae_plan, rng, progress=False)
    with pytest.raises(ValueError):
        method.fit(np.where(codes == 5, 6, codes), plan, rng, progress=False)


def test_gumbel_blocks_are_one_hot_per_column_when_hard() -> None:
    logits = torch.randn(500, 7, generator=torch.Generator().manual_seed(0))
    rows = dpsgd_gan.gumbel_softmax_blocks(logits, (3, 4), 0.5, torch.Generator().manual_seed(1), hard=True)
    assert torch.all((rows == 0) | (rows == 1))
    assert torch.all(rows[:, :3].sum(dim=1) == 1) and torch.all(rows[:, 3:].sum(dim=1) == 1)
    soft = dpsgd_gan.gumbel_softmax_blocks(logits, (3, 4), 0.5, torch.Generator().manual_seed(1))
    assert torch.allclose(soft[:, :3].sum(dim=1), torch.ones(500)) and torch.any((soft > 0.01) & (soft < 0.99))


# ------------------------------------------------------------------------------------------
# Through the library's public API: the ledger charges exactly this method's event
# ------------------------------------------------------------------------------------------


def test_synthesize_with_dpsgd_vae_charges_the_dpsgd_event() -> None:
    import pandas as pd

    from dpsynth.accounting.serialization import event_from_json
    from dpsynth.tabular.synthesize import synthesize

    rng = np.random.default_rng(0)
    codes = _correlated_table(400, 3, rng)
    labels = np.array(["red", "green", "blue"])
    df = pd.DataFrame({"a": labels[codes[:, 0]], "b": labels[codes[:, 1]]})
    metadata = {
        "columns": {c: {"type": "categorical", "categories": list(labels)} for c in ("a", "b")},
        "row_count": 400,
    }
    result = synthesize(
        df, epsilon=2.0, delta=1e-6, method="dpsgd_vae", metadata=metadata, seed=3, progress=False,
        method_options={"steps": 20, "expected_batch_size": 40, "hidden_sizes": (8,)},
    )
    assert list(result.data.columns) == ["a", "b"] and len(result.data) == 400
    allowed = set(labels) | {None}  # the public encoding keeps a "missing" code per column
    assert set(result.data["a"]) <= allowed and set(result.data["b"]) <= allowed
    charges = result.ledger.charges()
    assert len(charges) == 1  # all domain metadata public: only the method is charged
    charge = charges[0]
    event = event_from_json(charge["event"])
    sigma = charge["parameters"]["noise_multiplier"]
    assert event == dpsgd_event(40 / 400, sigma, 20)
    assert charge["sampling"] == "poisson"
    assert charge["parameters"]["privacy_noise_seed"] == "withheld"
    assert min(_independent_epsilons(event, charge["charge"]["delta"])) <= 2.0 + 1e-9
    assert result.ledger.epsilon_spent <= 2.0 + 1e-9


# ------------------------------------------------------------------------------------------
# Structure: one DP-SGD toolkit and base, shared privacy randomness (issue 13 §3, §4)
# ------------------------------------------------------------------------------------------


def test_vae_and_gan_share_the_dpsgd_base_not_each_other() -> None:
    assert issubclass(DPSGDVAEMethod, DPSGDMethod) and issubclass(dpsgd_gan.DPSGDGANMethod, DPSGDMethod)
    assert not issubclass(dpsgd_gan.DPSGDGANMethod, DPSGDVAEMethod)
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(dpsgd_gan))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "dpsynth.tabular.methods.dpsgd_vae" not in imported


def test_privacy_randomness_and_devices_come_from_their_one_home() -> None:
    import dpsynth.devices
    import dpsynth.randomness

    assert _dpsgd.secret_numpy_rng is dpsynth.randomness.secret_numpy_rng
    assert _dpsgd.secret_torch_generator is dpsynth.randomness.secret_torch_generator
    assert _dpsgd.resolve_device is dpsynth.devices.resolve_device
    # the methods never draw privacy randomness themselves: only the base class does
    for module in (dpsgd_vae, dpsgd_gan):
        for name in ("secret_numpy_rng", "secret_torch_generator", "make_dp_optimizer", "poisson_sample_indices"):
            assert not hasattr(module, name), (module.__name__, name)


def test_fit_draws_privacy_noise_and_batches_from_the_secret_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both methods' fits take the noise generator, then the batch generator, from dpsynth.randomness."""
    calls: list[str] = []
    original_np, original_torch = _dpsgd.secret_numpy_rng, _dpsgd.secret_torch_generator

    def np_rng():
        calls.append("numpy")
        return original_np()

    def torch_gen(device="cpu"):
        calls.append("torch")
        return original_torch(device)

    monkeypatch.setattr(_dpsgd, "secret_numpy_rng", np_rng)
    monkeypatch.setattr(_dpsgd, "secret_torch_generator", torch_gen)
    codes = _correlated_table(40, 4, np.random.default_rng(0))
    for method in (DPSGDVAEMethod(latent_dim=2, hidden_sizes=(4,), expected_batch_size=5, steps=2),
                   dpsgd_gan.DPSGDGANMethod(latent_dim=2, hidden_sizes=(4,), discriminator_hidden_sizes=(4,),
                                            expected_batch_size=5, steps=2)):
        plan = method.plan_for_noise_multiplier(1.0, 1e-5, DOMAIN2, n_public=40.0)
        method.fit(codes, plan, np.random.default_rng(1), progress=False)
    assert calls == ["torch", "numpy", "torch", "numpy"]


def test_gan_refuses_a_plan_without_its_model_parameters() -> None:
    method = dpsgd_gan.DPSGDGANMethod(latent_dim=2, hidden_sizes=(4,), discriminator_hidden_sizes=(4,),
                                      expected_batch_size=5, steps=2)
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, DOMAIN2, n_public=40.0)
    stripped = {k: v for k, v in plan.parameters.items() if k != "gumbel_temperature"}
    with pytest.raises(ValueError, match="gumbel_temperature"):
        method.fit(_correlated_table(40, 4, np.random.default_rng(0)),
                   MethodPlan(plan.method, plan.event, plan.delta, stripped, plan.sampling),
                   np.random.default_rng(1), progress=False)


def test_bad_device_is_a_dpsynth_error() -> None:
    from dpsynth.errors import DpsynthError

    method = DPSGDVAEMethod(latent_dim=2, hidden_sizes=(4,), expected_batch_size=5, steps=1, device="nonsense")
    plan = method.plan_for_noise_multiplier(1.0, 1e-5, DOMAIN2, n_public=40.0)
    with pytest.raises(DpsynthError):
        method.fit(_correlated_table(40, 4, np.random.default_rng(0)), plan, np.random.default_rng(1), False)
