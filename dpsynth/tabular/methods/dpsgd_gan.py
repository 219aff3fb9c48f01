"""DP-CTGAN-style GAN over one-hot columns: the discriminator is trained with DP-SGD (Opacus).

Privacy unit: one row of the private table. Neighbouring relation: add-or-remove-one row.

Guarantee. Only the discriminator ever reads private rows. Each of its ``steps`` updates

1. draws a **Poisson** batch of real rows (each row independently with probability
   ``q = expected_batch_size / n_public``; the size is random and may be zero), and ``m`` fake
   rows from the current generator, ``m = round(expected_batch_size)``, a public constant;
2. computes every row's own gradient of its own BCE loss in one pass (real rows labelled 1, fake 0;
   only ``Linear``/``LeakyReLU`` layers, nothing mixes rows), clips each to L2 norm ``C``;
3. adds ``N(0, (sigma * C)^2 I)`` to the sum and divides by the public constant
   ``expected_batch_size + m``.

The fake rows are a function of the generator, which is post-processing of earlier noisy
discriminator releases, so adding or removing one real row changes the clipped sum by at most
``C``. Each discriminator update is the Poisson-subsampled Gaussian mechanism with multiplier
``sigma``, and adaptive composition over ``steps`` updates is exactly the plan's event
``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`` -- the same event
as every :class:`dpsynth.tabular.methods._dpsgd.DPSGDMethod`. The generator trains only through the (DP)
discriminator on fake rows, and sampling is post-processing.

Unlike SmartNoise's DP-CTGAN there is **no conditional vector built from category frequencies**
(those are private counts, released there without noise); the generator is unconditional.

Randomness follows :mod:`dpsynth.tabular.methods._dpsgd`: batch selection and privacy noise come
from OS-CSPRNG-seeded generators that are never stored; the user's ``rng`` drives initialisation,
latent/Gumbel noise and sampling only.
"""

from __future__ import annotations

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
from dpsynth.validation import positive_float, positive_int

__all__ = ["DPSGDGANMethod", "FittedDPSGDGAN", "gumbel_softmax_blocks", "make_discriminator", "make_generator"]

#: Default per-row clipping bound of the discriminator's gradients.
DEFAULT_DISCRIMINATOR_CLIP = 1.0
#: Adam betas of both players (CTGAN / DCGAN convention).
ADAM_BETAS = (0.5, 0.9)


def make_generator(latent_dim: int, hidden_sizes: Sequence[int], width: int) -> nn.Sequential:
    """Generator MLP: latent ``z`` -> concatenated per-column logits (ReLU hidden layers)."""
    return mlp([int(latent_dim), *[int(h) for h in hidden_sizes], int(width)])


def make_discriminator(width: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    """Discriminator MLP: one-hot row -> one logit (LeakyReLU 0.2; no batch norm, no row mixing)."""
    return mlp([int(width), *[int(h) for h in hidden_sizes], 1], nn.LeakyReLU, negative_slope=0.2)


def gumbel_softmax_blocks(
    logits: torch.Tensor,
    sizes: Sequence[int],
    temperature: float,
    generator: torch.Generator,
    hard: bool = False,
) -> torch.Tensor:
    """Relaxed one-hot rows: a Gumbel-softmax per column block (CTGAN's output activation).

    With ``hard=True`` the rows are exact one-hot vectors (so the discriminator cannot tell fakes
    by their softness) with the relaxed gradient (straight-through estimator).
    """
    u = torch.rand(logits.shape, generator=generator).to(logits.device).clamp(1e-10, 1.0 - 1e-10)
    perturbed = (logits - torch.log(-torch.log(u))) / temperature
    parts = []
    offset = 0
    for k in sizes:
        soft = torch.softmax(perturbed[:, offset : offset + int(k)], dim=1)
        if hard:  # straight-through: exact one-hot forward, soft gradient backward
            one_hot = nn.functional.one_hot(soft.argmax(dim=1), num_classes=int(k)).to(soft.dtype)
            soft = one_hot + (soft - soft.detach())  # exactly one_hot in value
        parts.append(soft)
        offset += int(k)
    return torch.cat(parts, dim=1)


class FittedDPSGDGAN(FittedCodeDecoder):
    """The generator of a DP-trained GAN; ``sample`` (post-processing) draws codes from its
    per-column softmax at ``z ~ N(0, I)``, exactly like the VAE's decoder."""


class DPSGDGANMethod(DPSGDMethod):
    """GAN whose discriminator is trained with DP-SGD (Opacus); the generator is post-processing.

    Privacy unit: one row; add-or-remove-one. The plan's event is the Poisson-subsampled Gaussian
    DP-SGD event of the discriminator's ``steps`` updates (see the module docstring).

    Hyper-parameters (public): ``latent_dim``, ``hidden_sizes`` (generator),
    ``discriminator_hidden_sizes``, ``expected_batch_size``, ``steps`` or ``epochs``,
    ``max_grad_norm`` (``None``: 1.0), ``learning_rate`` (discriminator, Adam),
    ``generator_learning_rate``, ``gumbel_temperature``, ``device``.
    """

    name = "dpsgd_gan"
    extra_required_parameters = ("discriminator_hidden_sizes", "generator_learning_rate", "gumbel_temperature")

    def __init__(
        self,
        latent_dim: int = 16,
        hidden_sizes: Sequence[int] = (64,),
        discriminator_hidden_sizes: Sequence[int] = (64,),
        expected_batch_size: int = 256,
        epochs: float | None = None,
        steps: int | None = None,
        max_grad_norm: float | None = None,
        learning_rate: float = 1e-3,
        generator_learning_rate: float = 1e-3,
        gumbel_temperature: float = 0.5,
        hard_gumbel: bool = True,
        device: str | None = None,
        lr_schedule: str = "constant",
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
            optimizer="adam",
            lr_schedule=lr_schedule,
        )
        self.discriminator_hidden_sizes = tuple(
            positive_int("discriminator hidden size", h) for h in discriminator_hidden_sizes
        )
        self.generator_learning_rate = positive_float("generator_learning_rate", generator_learning_rate)
        self.gumbel_temperature = positive_float("gumbel_temperature", gumbel_temperature)
        self.hard_gumbel = bool(hard_gumbel)

    def clipping_bound(self, domain: EncodedDomain) -> float:
        """The discriminator's per-row clipping bound: as given, else 1.0 (public constant)."""
        return DEFAULT_DISCRIMINATOR_CLIP if self.max_grad_norm is None else float(self.max_grad_norm)

    def _model_parameters(self) -> dict:
        return {
            "model": "gan (DP-SGD discriminator, unconditional generator)",
            "discriminator_hidden_sizes": list(self.discriminator_hidden_sizes),
            "generator_learning_rate": self.generator_learning_rate,
            "gumbel_temperature": self.gumbel_temperature,
            "hard_gumbel": self.hard_gumbel,
            "normalisation": "sum of clipped per-row discriminator gradients (real and fake rows) + noise, "
            "divided by expected_batch_size + fake rows per step",
        }

    def fit(
        self,
        codes: np.ndarray,
        plan: MethodPlan,
        rng: np.random.Generator,
        progress: bool = True,
    ) -> FittedDPSGDGAN:
        """Train the GAN following ``plan`` on private int codes ``(n, d)``; costs ``plan.event``."""
        setup = self._begin_fit(codes, plan, rng)
        p, sizes, device, public_generator = setup.parameters, setup.sizes, setup.device, setup.public_generator
        width = sum(sizes)
        latent_dim = int(p["latent_dim"])
        temperature = float(p["gumbel_temperature"])
        hard = bool(p.get("hard_gumbel", False))
        normaliser = float(p["expected_batch_size"])
        fake_rows = max(1, int(round(normaliser)))  # public constant

        generator = make_generator(latent_dim, p["hidden_sizes"], width)
        discriminator = make_discriminator(width, p["discriminator_hidden_sizes"])
        reset_linear_layers(generator, public_generator)
        reset_linear_layers(discriminator, public_generator)
        generator.to(device)
        discriminator.to(device)

        dp_discriminator = per_sample_gradient_module(discriminator)
        d_optimizer = self._dp_optimizer(dp_discriminator.parameters(), setup, normaliser=normaliser + fake_rows,
                                         optimizer="adam", betas=ADAM_BETAS)
        g_optimizer = torch.optim.Adam(generator.parameters(), lr=float(p["generator_learning_rate"]), betas=ADAM_BETAS)
        schedulers = self._lr_schedulers([d_optimizer.original_optimizer, g_optimizer], setup)
        onehot = one_hot_codes(torch.from_numpy(setup.codes).to(device), sizes)
        bce = nn.functional.binary_cross_entropy_with_logits

        def fake_batch() -> torch.Tensor:
            z = torch.randn((fake_rows, latent_dim), generator=public_generator).to(device)
            return gumbel_softmax_blocks(generator(z), sizes, temperature, public_generator, hard=hard)

        # the discriminator's update is the only step that reads private rows (DP-SGD)
        for index in self._poisson_batches(setup, progress=progress, desc="DP-SGD GAN"):
            with torch.no_grad():
                fake = fake_batch()
            rows = torch.cat([onehot[index], fake], dim=0)
            labels = torch.cat([torch.ones(len(index), device=device), torch.zeros(fake_rows, device=device)])
            d_optimizer.zero_grad(set_to_none=True)
            d_loss = bce(dp_discriminator(rows).squeeze(1), labels, reduction="none").sum()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                d_loss.backward()
            d_optimizer.step()

            # generator: fake rows through the (already DP) discriminator; no private data
            dp_discriminator.disable_hooks()  # no per-sample gradients for the generator step
            for param in discriminator.parameters():
                param.requires_grad_(False)
            g_optimizer.zero_grad(set_to_none=True)
            g_loss = bce(dp_discriminator(fake_batch()).squeeze(1), torch.ones(fake_rows, device=device))
            g_loss.backward()
            g_optimizer.step()
            for param in discriminator.parameters():
                param.requires_grad_(True)
            dp_discriminator.enable_hooks()
            for scheduler in schedulers:
                scheduler.step()
        d_optimizer.zero_grad(set_to_none=True)
        dp_discriminator.remove_hooks()
        return FittedDPSGDGAN(generator, sizes, latent_dim)
