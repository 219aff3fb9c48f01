"""DP-SGD trained variational auto-encoder over one-hot encoded categorical columns.

Privacy unit: one row of the private table. Neighbouring relation: add-or-remove-one row.

Guarantee. ``fit`` is the DP-SGD loop of :mod:`dpsynth.tabular.methods._dpsgd` on the VAE: each
of ``steps`` iterations draws a Poisson batch at rate ``q = expected_batch_size / n_public``,
computes each included row's gradient of its own loss (the negative ELBO of that row only; no
layer mixes rows, there is no batch norm), clips it to ``C``, adds ``N(0, (sigma * C)^2 I)`` to the
sum and divides by the public expected batch size. The whole fit is exactly
``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`` -- the plan's event,
which the ledger charges. The optimiser update (Adam), the model and ``sample`` are
post-processing of the noisy gradients.

Randomness. Batch selection and privacy noise come from :mod:`dpsynth.randomness` (OS-CSPRNG
seeded, never stored). The user's ``rng`` only drives public choices: the weight initialisation,
the VAE's reparameterisation noise and, in ``sample``, the synthetic draws.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import nn

from dpsynth.tabular.methods._dpsgd import (
    DPSGDMethod,
    FittedCodeDecoder,
    mlp,
    one_hot_codes,
    per_sample_gradient_module,
    reset_linear_layers,
)
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan

__all__ = ["DEFAULT_CLIP_PER_SQRT_COLUMN", "DPSGDVAEMethod", "FittedDPSGDVAE", "TabularVAE", "per_row_negative_elbo"]

#: Default clipping bound per square root of the number of columns (see ``clipping_bound``).
DEFAULT_CLIP_PER_SQRT_COLUMN = 3.5


def per_row_negative_elbo(
    logits: torch.Tensor,
    codes: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    sizes: Sequence[int],
) -> torch.Tensor:
    """Per-row negative ELBO: sum of per-column cross-entropies plus the KL to N(0, I).

    Returns a vector of shape ``(n,)``; row ``i``'s entry depends on row ``i`` only, which is what
    makes per-sample clipping bound one row's influence.
    """
    loss = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    offset = 0
    for j, k in enumerate(sizes):
        column_logits = logits[:, offset : offset + int(k)]
        loss = loss + nn.functional.cross_entropy(column_logits, codes[:, j], reduction="none")
        offset += int(k)
    return loss


class TabularVAE(nn.Module):
    """VAE: one-hot row -> Gaussian latent -> per-column logits (softmax per column).

    Only ``nn.Linear`` and ``ReLU`` layers, so Opacus computes exact per-sample gradients and no
    layer mixes rows of a batch.
    """

    def __init__(self, sizes: Sequence[int], latent_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.sizes = tuple(int(k) for k in sizes)
        self.latent_dim = int(latent_dim)
        width = sum(self.sizes)
        hidden = [int(h) for h in hidden_sizes]
        self.encoder = mlp([width, *hidden, 2 * self.latent_dim])
        self.decoder = mlp([self.latent_dim, *reversed(hidden), width])

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-initialise every linear layer (PyTorch's default scheme) from ``generator``."""
        reset_linear_layers(self, generator)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(logits, mu, logvar)`` for one-hot rows ``x`` and standard-normal ``eps``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-10.0, 10.0)
        z = mu + (0.5 * logvar).exp() * eps
        return self.decoder(z), mu, logvar


class FittedDPSGDVAE(FittedCodeDecoder):
    """The DP-trained VAE decoder; ``sample`` is post-processing and never sees private data."""


class DPSGDVAEMethod(DPSGDMethod):
    """DP-SGD (Opacus) trained VAE over the public encoded domain.

    Privacy unit: one row; add-or-remove-one. The plan's event
    ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`` is the whole
    privacy cost of ``fit``; ``sample`` is free post-processing. See the module docstring for the
    argument and the randomness policy.

    Hyper-parameters (all public): ``latent_dim``, ``hidden_sizes``, ``expected_batch_size``,
    ``steps`` or ``epochs`` (at most one; default ``_dpsgd.DEFAULT_STEPS`` = 1000 steps, whatever the table
    size: about 1000 noisy steps trained well from 3k to 50k rows), ``max_grad_norm`` (clipping bound C;
    ``None``: ``3.5 * sqrt(number of columns)``, a public rule),
    ``learning_rate`` (Adam), ``device`` (``None``: CUDA if available, else CPU).
    """

    name = "dpsgd_vae"

    def __init__(
        self,
        latent_dim: int = 8,
        hidden_sizes: Sequence[int] = (64,),
        expected_batch_size: int = 256,
        epochs: float | None = None,
        steps: int | None = None,
        max_grad_norm: float | None = None,
        learning_rate: float = 1e-2,
        device: str | None = None,
        optimizer: str = "adam",
        lr_schedule: str = "cosine",
    ) -> None:
        super().__init__(
            latent_dim=latent_dim,
            hidden_sizes=hidden_sizes,
            expected_batch_size=expected_batch_size,
            epochs=epochs,
            steps=steps,
            max_grad_norm=max_grad_norm,
            learning_rate=learning_rate,
            device=device,
            optimizer=optimizer,
            lr_schedule=lr_schedule,
        )

    def clipping_bound(self, domain: EncodedDomain) -> float:
        """The per-row L2 clipping bound C: as given, else ``DEFAULT_CLIP_PER_SQRT_COLUMN * sqrt(d)``.

        The default is a public rule on the column count ``d`` only: per-row gradient norms of
        this VAE grow about like ``sqrt(d)`` (median ~3.5 sqrt(d) measured on synthetic tables),
        and a bound near the median keeps the clipping bias small without inflating the noise.
        """
        if self.max_grad_norm is not None:
            return float(self.max_grad_norm)
        return DEFAULT_CLIP_PER_SQRT_COLUMN * math.sqrt(len(domain.sizes))

    def fit(
        self,
        codes: np.ndarray,
        plan: MethodPlan,
        rng: np.random.Generator,
        progress: bool = True,
    ) -> FittedDPSGDVAE:
        """Train the VAE with DP-SGD following ``plan`` on private int codes ``(n, d)``.

        The cost is exactly ``plan.event`` (add-or-remove-one row). The user's ``rng`` seeds
        public randomness only (initialisation, reparameterisation noise); batch selection and
        privacy noise come from CSPRNG-seeded generators that are never stored.
        """
        setup = self._begin_fit(codes, plan, rng)
        p, sizes = setup.parameters, setup.sizes
        latent_dim = int(p["latent_dim"])
        model = TabularVAE(sizes, latent_dim, p["hidden_sizes"])
        model.reset_parameters(setup.public_generator)
        model.to(setup.device)

        grad_model = per_sample_gradient_module(model)
        optimizer = self._dp_optimizer(grad_model.parameters(), setup, normaliser=float(p["expected_batch_size"]),
                                       optimizer=str(p["optimizer"]))
        (scheduler,) = self._lr_schedulers([optimizer.original_optimizer], setup)
        codes_t = torch.from_numpy(setup.codes).to(setup.device)
        onehot = one_hot_codes(codes_t, sizes)

        grad_model.train()
        for index in self._poisson_batches(setup, progress=progress, desc="DP-SGD VAE"):
            optimizer.zero_grad(set_to_none=True)
            eps = torch.randn((len(index), latent_dim), generator=setup.public_generator).to(setup.device)
            logits, mu, logvar = grad_model(onehot[index], eps)
            loss = per_row_negative_elbo(logits, codes_t[index], mu, logvar, sizes).sum()
            with warnings.catch_warnings():
                # Opacus' hooks fire on module outputs since the one-hot inputs need no gradient.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            optimizer.step()
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        grad_model.remove_hooks()
        return FittedDPSGDVAE(model.decoder, sizes, latent_dim)
