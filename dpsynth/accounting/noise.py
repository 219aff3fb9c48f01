"""Noise primitives: the Gaussian and Laplace mechanisms with the events that account for them.

Randomness comes from a numpy ``Generator`` seeded from the operating system's CSPRNG
(:func:`dpsynth.randomness.secret_numpy_rng`, re-exported here as ``privacy_rng``); its seed is never returned or written. Floating-point noise is not hardened
against Mironov's (2012) attack on the low-order bits; the ledger's dependency versions say which
implementation ran.
"""

from __future__ import annotations


import numpy as np
from dp_accounting import dp_event

from dpsynth.randomness import secret_numpy_rng as privacy_rng  # the one home of privacy randomness
from dpsynth.validation import positive_float


def gaussian_mechanism(
    values: np.ndarray, l2_sensitivity: float, noise_multiplier: float, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, dp_event.DpEvent]:
    """``values + N(0, (noise_multiplier * l2_sensitivity)^2)`` per coordinate, and its event.

    The event is ``GaussianDpEvent(noise_multiplier)`` under add-or-remove-one, valid when adding
    or removing one privacy unit changes ``values`` by at most ``l2_sensitivity`` in L2 norm.
    """
    positive_float("l2_sensitivity", l2_sensitivity)
    positive_float("noise_multiplier", noise_multiplier)
    rng = rng or privacy_rng()
    values = np.asarray(values, dtype=float)
    noisy = values + rng.normal(0.0, noise_multiplier * l2_sensitivity, size=values.shape)
    return noisy, dp_event.GaussianDpEvent(noise_multiplier)


def laplace_mechanism(
    values: np.ndarray, l1_sensitivity: float, epsilon: float, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, dp_event.DpEvent]:
    """``values + Laplace(l1_sensitivity / epsilon)`` per coordinate, and its event.

    The event is ``LaplaceDpEvent(1 / epsilon)`` (noise scale over sensitivity): ``epsilon``-DP when
    adding or removing one unit changes ``values`` by at most ``l1_sensitivity`` in L1 norm.
    """
    positive_float("l1_sensitivity", l1_sensitivity)
    positive_float("epsilon", epsilon)
    rng = rng or privacy_rng()
    values = np.asarray(values, dtype=float)
    noisy = values + rng.laplace(0.0, l1_sensitivity / epsilon, size=values.shape)
    return noisy, dp_event.LaplaceDpEvent(1.0 / epsilon)
