"""Where synthetic-data quality was lost outside the model: decoding must re-encode to the same codes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.tabular.encoding import ColumnEncoder
from dpsynth.tabular.schema import ColumnSpec


def test_integer_bins_with_fractional_edges_decode_inside_their_bin():
    # 1..99 in 10 bins has edges 1, 10.8, 20.6, ...: flooring a real draw from [30.4, 40.2) gave 30,
    # which re-encodes to the bin below (6% of every bin's rows moved; hours-per-week lost 0.03 1-way TVD).
    spec = ColumnSpec("hours", "numerical", lower=1, upper=99, integer=True, bins=10, nullable=False)
    enc = ColumnEncoder.from_spec(spec)
    values = pd.Series(np.random.default_rng(0).integers(1, 100, 20_000))
    codes = enc.encode(values)
    decoded = enc.decode(codes, np.random.default_rng(1))
    assert decoded.between(1, 99).all() and str(decoded.dtype) == "int64"
    assert np.array_equal(enc.encode(decoded), codes)
    # every integer of a bin can come out (uniform over the bin's integers, not only its lower part)
    bin3 = decoded[codes == 3]
    assert set(bin3) == set(range(31, 41))


def test_merged_bins_are_split_by_the_noisy_counts_not_uniformly():
    from dpsynth.tabular.methods.mst import split_merged, within_bin_shares

    noisy = np.array([500.0, 30.0, 10.0, -4.0, 0.0, 900.0])
    mapping = np.array([0, 2, 2, 2, 2, 1])  # values 1-4 merged into bin 2
    shares = within_bin_shares(noisy, mapping)
    assert np.allclose(shares, [1.0, 0.75, 0.25, 0.0, 0.0, 1.0])  # clipped counts, normalised per bin
    # a bin whose clipped counts are all zero stays uniform
    assert np.allclose(within_bin_shares(np.array([-1.0, -2.0, 50.0]), np.array([0, 0, 1])), [0.5, 0.5, 1.0])
    codes = np.array([2] * 1000 + [0] * 10 + [1] * 5)
    out = split_merged(codes, mapping, shares, np.random.default_rng(0))
    assert np.bincount(out[:1000], minlength=6).tolist() == [0, 750, 250, 0, 0, 0]  # stratified: exact up to rounding
    assert (out[1000:1010] == 0).all() and (out[1010:] == 5).all()


def test_mst_samples_merged_values_by_their_noisy_counts():
    from dpsynth.tabular.methods.base import EncodedDomain
    from dpsynth.tabular.methods.mst import MSTMethod

    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.integers(0, 3, n)
    # a merged bin of 30 values at 0.2% each (40 rows, under the 3 sigma = 64 threshold) and 40 never seen
    rare = np.where(rng.random(n) < 0.94, 0, rng.integers(1, 31, n))
    codes = np.stack([a, rare], axis=1)
    dom = EncodedDomain(("a", "rare"), (3, 71))
    plan = MSTMethod(iters=200).calibrate(0.5, 1e-6, dom, float(n))
    model = MSTMethod().fit(codes, plan, np.random.default_rng(1), progress=False)
    assert model.mappings[1].max() < 10  # rare values were merged
    synth = model.sample(n, np.random.default_rng(2))
    never = np.isin(synth[:, 1], np.arange(31, 71)).mean()
    assert never < 0.018  # uniform spreading puts 40/70 of the bin's ~6% there: 0.026-0.029 on three seeds
    p = model.probabilities(("rare",))
    assert p[31:].sum() < 0.018 and abs(p.sum() - 1) < 1e-9


def test_mst_split_is_a_public_parameter_and_fit_makes_its_releases():
    from tests.test_tabular_methods_plan import RecordingRng, table

    from dpsynth.tabular.methods.mst import MSTMethod, mst_event, mst_parameters

    codes, dom = table()
    method = MSTMethod(iters=100, split=(1, 0.5, 1.5))
    plan = method.calibrate(1.0, 1e-6, dom, 3000.0)
    p = plan.parameters
    assert p["split"] == [1.0, 0.5, 1.5]
    assert plan.event == mst_event(p["rho"], 5, (1, 0.5, 1.5))
    assert (p["sigma_1way"], p["epsilon_selection_per_step"], p["sigma_2way"]) == mst_parameters(p["rho"], 5, (1, 0.5, 1.5))
    rng = RecordingRng(3)
    method.fit(codes, plan, rng, progress=False)
    assert rng.normal_scales == [p["sigma_1way"]] * 5 + [p["sigma_2way"]] * 4 and rng.gumbel_calls == 4
    for bad in ((1, 1), (1, 0, 1), (1, float("nan"), 1)):
        try:
            MSTMethod(split=bad)
        except ValueError:
            continue
        raise AssertionError(f"split {bad} accepted")
