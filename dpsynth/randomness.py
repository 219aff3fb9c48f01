"""The one home of privacy randomness: generators seeded from the operating system's CSPRNG.

Every draw of *privacy noise* in dpsynth (Gaussian/Laplace measurements, exponential-mechanism
selections, DP-SGD noise and sampling, the text sampler) comes from a generator made here. Their
seeds come from :func:`secrets.randbits` and are never returned, stored or written to a ledger, so a
user's ``seed`` argument cannot reach privacy noise: it drives only post-processing (e.g. sampling
rows from an already fitted DP model). To answer "can a seed reach the noise?", read this file and
grep for its three functions.

Not hardened: floating-point side channels (Mironov 2012); torch's and numpy's generators are not
cryptographic PRNGs, only their seeds are.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


def secret_numpy_rng() -> np.random.Generator:
    """A fresh numpy generator seeded from OS entropy (128 bits). Never seed privacy noise otherwise."""
    return np.random.default_rng(secrets.randbits(128))


def secret_torch_generator(device: "torch.device | str | Any" = "cpu") -> "torch.Generator":
    """A fresh torch generator on ``device`` seeded from OS entropy (63 bits); the seed is never kept."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63))
    return generator


def secret_seed(bits: int = 63) -> int:
    """A seed from OS entropy for a library that only takes integer seeds (never written anywhere)."""
    return secrets.randbits(bits)
