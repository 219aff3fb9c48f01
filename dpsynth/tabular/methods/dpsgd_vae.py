"""DP-SGD trained variational auto-encoder over one-hot encoded categorical columns.

Privacy unit: one row of the private table. Neighbouring relation: add-or-remove-one row.

Guarantee. ``fit`` runs ``steps`` iterations of DP-SGD (Abadi et al. 2016) through Opacus
(``GradSampleModule`` for per-sample gradients, ``DPOptimizer`` for clipping, noise and
normalisation). Each iteration

1. draws a **Poisson** batch: every row is included independently with probability
   ``q = expected_batch_size / n_public`` (so batches have random size, possibly zero);
2. computes each included row's gradient of its own loss (the negative ELBO of that row only;
   no layer mixes rows, there is no batch norm), clips it to L2 norm ``max_grad_norm = C``;
3. adds ``N(0, (sigma * C)^2 I)`` to the sum of the clipped gradients and divides by the
   **public constant** ``expected_batch_size`` (never by the realised batch size nor by the
   private row count).

Adding or removing one row changes the clipped sum by at most ``C`` in L2, so each iteration is the
Poisson-subsampled Gaussian mechanism with noise multiplier ``sigma``, and the whole fit is exactly
``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`` -- the event this
method's plan carries and the ledger charges. The optimiser update (Adam), the model and
``sample`` are post-processing of the noisy gradients.

``q``, ``steps`` and the normaliser depend only on public inputs: the hyper-parameters and
``n_public`` (a public or DP-released row-count estimate). ``len(codes)`` is never used for them.
If ``n_public`` is wrong the guarantee still holds (Poisson sampling at rate ``q`` is analysed for
any dataset size); only utility changes.

Randomness. The Poisson batch selection and the privacy noise are drawn from generators seeded
from the operating system's CSPRNG (:mod:`secrets`) inside ``fit``; neither seed is stored or
returned, so nothing written to disk (in particular not the user's seed) reproduces them. The
user's ``rng`` only drives public choices: the weight initialisation, the VAE's reparameterisation
noise and, in ``sample``, the synthetic draws. Caveats: Opacus' ``secure_mode`` (floating-point
attack hardening, Mironov 2012) needs ``torchcsprng``, which does not exist for current torch, so
noise is sampled with torch's ordinary ``normal`` from a CSPRNG-seeded Philox/MT generator.
"""

from __future__ import annotations

import math
import secrets
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from dp_accounting import dp_event
from torch import nn
from tqdm.auto import tqdm

from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan

if TYPE_CHECKING:  # opacus is imported lazily at fit time
    from opacus.optimizers import DPOptimizer

__all__ = [
    "DPSGDSchedule",
    "DPSGDVAEMethod",
    "FittedDPSGDVAE",
    "TabularVAE",
    "dpsgd_event",
    "dpsgd_schedule",
    "learning_rate_factor",
    "make_dp_optimizer",
    "one_hot_codes",
    "per_row_negative_elbo",
    "poisson_sample_indices",
    "resolve_device",
    "sample_codes_from_logits",
    "secret_numpy_rng",
    "secret_torch_generator",
]

_METHOD_NAME = "dpsgd_vae"
#: Default clipping bound per square root of the number of columns (see ``clipping_bound``).
DEFAULT_CLIP_PER_SQRT_COLUMN = 3.5
#: Default number of DP-SGD steps when neither ``steps`` nor ``epochs`` is given.
DEFAULT_STEPS = 1000


# --------------------------------------------------------------------------------------------
# Pure, public-parameter helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPSGDSchedule:
    """DP-SGD's public sampling schedule, derived from public inputs only.

    ``sample_rate`` is the Poisson inclusion probability ``q``, ``steps`` the number of noisy
    iterations and ``normaliser`` the public constant the noisy gradient sum is divided by
    (the expected batch size ``q * n_public``).
    """

    sample_rate: float
    steps: int
    normaliser: float


def _check_positive_finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def dpsgd_schedule(
    n_public: float,
    expected_batch_size: int,
    epochs: float | None = None,
    steps: int | None = None,
) -> DPSGDSchedule:
    """The public DP-SGD schedule for a table of (public estimate) ``n_public`` rows.

    ``q = min(1, expected_batch_size / n_public)``; ``steps`` is given directly or
    ``ceil(epochs / q)`` (i.e. ``epochs * n_public / expected_batch_size``); the normaliser is
    ``q * n_public`` (the expected batch size, capped at ``n_public``). Exactly one of ``epochs``
    and ``steps`` must be given. Nothing here may depend on the private data.
    """
    n_public = _check_positive_finite("n_public", n_public)
    batch = _check_positive_finite("expected_batch_size", expected_batch_size)
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs and steps")
    sample_rate = min(1.0, batch / n_public)
    if steps is None:
        epochs = _check_positive_finite("epochs", epochs)
        n_steps = max(1, math.ceil(epochs / sample_rate))
    else:
        n_steps = _check_positive_int("steps", steps)
    return DPSGDSchedule(sample_rate=sample_rate, steps=n_steps, normaliser=sample_rate * n_public)


def dpsgd_event(sample_rate: float, noise_multiplier: float, steps: int) -> dp_event.DpEvent:
    """The dp-accounting event of ``steps`` Poisson-subsampled Gaussian DP-SGD iterations."""
    return dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(float(sample_rate), dp_event.GaussianDpEvent(float(noise_multiplier))),
        int(steps),
    )


def poisson_sample_indices(n_rows: int, sample_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of a Poisson batch: each of ``n_rows`` rows is included independently w.p. ``sample_rate``.

    The batch size is Binomial(n_rows, sample_rate) and may be zero. This is the sampling scheme
    the ``PoissonSampledDpEvent`` accounting assumes (no truncation, no padding, no shuffling).
    """
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate!r}")
    return np.flatnonzero(rng.random(int(n_rows)) < sample_rate)


def secret_numpy_rng() -> np.random.Generator:
    """A numpy generator seeded from the OS CSPRNG; the seed is never stored or returned."""
    return np.random.default_rng(secrets.randbits(128))


def secret_torch_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from the OS CSPRNG; the seed is never stored."""
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63))
    return generator


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else CPU; anything else is used as given."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    return resolved


def per_sample_gradient_module(module: nn.Module) -> nn.Module:
    """Wrap ``module`` in Opacus' ``GradSampleModule`` with ``loss_reduction="sum"``, the form
    :func:`make_dp_optimizer` requires (row ``i``'s own gradient in ``p.grad_sample[i]``)."""
    from opacus import GradSampleModule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GradSampleModule(module, batch_first=True, loss_reduction="sum")


def make_dp_optimizer(
    params: Sequence[nn.Parameter],
    *,
    learning_rate: float,
    noise_multiplier: float,
    max_grad_norm: float,
    normaliser: float,
    generator: torch.Generator | None,
    optimizer: str = "adam",
    betas: tuple[float, float] = (0.9, 0.999),
) -> "DPOptimizer":
    """Opacus ``DPOptimizer`` that clips per-sample gradients to ``max_grad_norm``, adds
    ``N(0, (noise_multiplier * max_grad_norm)^2)`` to their sum and divides by ``normaliser``.

    The wrapped model must be a ``GradSampleModule`` with ``loss_reduction="sum"`` and the loss
    the *sum* of per-row losses, so that ``p.grad_sample[i]`` is row ``i``'s own gradient; the
    optimizer's ``loss_reduction="mean"`` then divides by ``expected_batch_size = normaliser``, a
    public constant, and nothing else.
    """
    from opacus.optimizers import DPOptimizer

    params = list(params)
    if optimizer == "adam":
        inner = torch.optim.Adam(params, lr=learning_rate, betas=betas)
    elif optimizer == "sgd":
        inner = torch.optim.SGD(params, lr=learning_rate)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r} (use 'adam' or 'sgd')")
    return DPOptimizer(
        inner,
        noise_multiplier=float(noise_multiplier),
        max_grad_norm=float(max_grad_norm),
        expected_batch_size=float(normaliser),
        loss_reduction="mean",
        generator=generator,
        secure_mode=False,
    )


def learning_rate_factor(step: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate at ``step`` (public schedule, 0-based).

    ``constant``: 1. ``cosine``: decays from 1 to 0.05 over ``total_steps`` (a decaying rate
    damps the privacy noise in the final iterate).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (use 'constant' or 'cosine')")


def one_hot_codes(codes: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Concatenated one-hot encoding of int codes ``(n, d)`` with column sizes ``sizes``."""
    parts = [nn.functional.one_hot(codes[:, j], num_classes=int(k)) for j, k in enumerate(sizes)]
    if not parts:
        return torch.zeros((codes.shape[0], 0), device=codes.device)
    return torch.cat(parts, dim=1).to(torch.float32)


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


def sample_codes_from_logits(logits: np.ndarray, sizes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Draw one code per column from per-column softmax distributions (inverse-CDF with ``rng``)."""
    n = logits.shape[0]
    out = np.empty((n, len(sizes)), dtype=np.int64)
    offset = 0
    for j, k in enumerate(sizes):
        k = int(k)
        block = logits[:, offset : offset + k].astype(np.float64)
        block = block - block.max(axis=1, keepdims=True)
        probs = np.exp(block)
        cdf = np.cumsum(probs, axis=1)
        u = rng.random(n) * cdf[:, -1]
        out[:, j] = np.minimum((cdf <= u[:, None]).sum(axis=1), k - 1)
        offset += k
    return out


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


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
        self.encoder = _mlp([width, *hidden, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim, *reversed(hidden), width])

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-initialise every linear layer (PyTorch's default scheme) from ``generator``."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(module.in_features) if module.in_features > 0 else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(logits, mu, logvar)`` for one-hot rows ``x`` and standard-normal ``eps``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-10.0, 10.0)
        z = mu + (0.5 * logvar).exp() * eps
        return self.decoder(z), mu, logvar


class FittedDPSGDVAE:
    """The DP-trained decoder; ``sample`` is post-processing and never sees private data."""

    def __init__(self, decoder: nn.Module, sizes: Sequence[int], latent_dim: int) -> None:
        self.decoder = decoder.to("cpu").eval()
        self.sizes = tuple(int(k) for k in sizes)
        self.latent_dim = int(latent_dim)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` synthetic rows as int codes, shape ``(n, d)``, every code in ``0..sizes[j]-1``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        chunks = []
        for start in range(0, int(n), 65536):
            m = min(65536, int(n) - start)
            z = torch.from_numpy(rng.standard_normal((m, self.latent_dim)).astype(np.float32))
            with torch.no_grad():
                logits = self.decoder(z).numpy()
            chunks.append(sample_codes_from_logits(logits, self.sizes, rng))
        if not chunks:
            return np.empty((0, len(self.sizes)), dtype=np.int64)
        return np.concatenate(chunks, axis=0)


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------

_REQUIRED_PARAMETERS = (
    "noise_multiplier",
    "sample_rate",
    "steps",
    "expected_batch_size",
    "max_grad_norm",
    "learning_rate",
    "latent_dim",
    "hidden_sizes",
    "domain_sizes",
    "optimizer",
    "lr_schedule",
)


def _validate_codes(codes: Any, sizes: Sequence[int]) -> np.ndarray:
    """Check the private codes against the public domain (shape, dtype, range)."""
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be a 2-D array (rows x columns), got {arr.ndim} dimension(s)")
    if arr.shape[1] != len(sizes):
        raise ValueError(f"codes have {arr.shape[1]} columns but the plan's domain has {len(sizes)}")
    if arr.shape[0] == 0:
        raise ValueError("codes are empty: there are no rows to fit on")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {arr.dtype}")
    for j, k in enumerate(sizes):
        column = arr[:, j]
        if column.min() < 0 or column.max() >= k:
            raise ValueError(f"column {j} has codes outside the public domain 0..{k - 1}")
    return arr.astype(np.int64, copy=False)


class DPSGDVAEMethod:
    """DP-SGD (Opacus) trained VAE over the public encoded domain.

    Privacy unit: one row; add-or-remove-one. The plan's event
    ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`` is the whole
    privacy cost of ``fit``; ``sample`` is free post-processing. See the module docstring for the
    argument and the randomness policy.

    Hyper-parameters (all public): ``latent_dim``, ``hidden_sizes``, ``expected_batch_size``,
    ``steps`` or ``epochs`` (at most one; default ``DEFAULT_STEPS`` steps, whatever the table
    size: about 1000 noisy steps trained well from 3k to 50k rows), ``max_grad_norm`` (clipping bound C;
    ``None``: ``3.5 * sqrt(number of columns)``, a public rule),
    ``learning_rate`` (Adam), ``device`` (``None``: CUDA if available, else CPU).
    """

    name = _METHOD_NAME

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
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        self.hidden_sizes = tuple(_check_positive_int("hidden size", h) for h in hidden_sizes)
        self.expected_batch_size = _check_positive_int("expected_batch_size", expected_batch_size)
        if epochs is not None and steps is not None:
            raise ValueError("give at most one of epochs and steps")
        self.epochs = None if epochs is None else _check_positive_finite("epochs", epochs)
        self.steps = None if steps is None else _check_positive_int("steps", steps)
        if self.epochs is None and self.steps is None:
            self.steps = DEFAULT_STEPS
        self.max_grad_norm = None if max_grad_norm is None else _check_positive_finite("max_grad_norm", max_grad_norm)
        self.learning_rate = _check_positive_finite("learning_rate", learning_rate)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {optimizer!r} (use 'adam' or 'sgd')")
        self.optimizer = optimizer
        learning_rate_factor(0, 1, lr_schedule)  # validates the name
        self.lr_schedule = lr_schedule
        self.device = device

    # -- planning (public inputs only) -------------------------------------------------------

    def clipping_bound(self, domain: EncodedDomain) -> float:
        """The per-row L2 clipping bound C: as given, else ``DEFAULT_CLIP_PER_SQRT_COLUMN * sqrt(d)``.

        The default is a public rule on the column count ``d`` only: per-row gradient norms of
        this VAE grow about like ``sqrt(d)`` (median ~3.5 sqrt(d) measured on synthetic tables),
        and a bound near the median keeps the clipping bias small without inflating the noise.
        """
        if self.max_grad_norm is not None:
            return float(self.max_grad_norm)
        return DEFAULT_CLIP_PER_SQRT_COLUMN * math.sqrt(len(domain.sizes))

    def schedule(self, n_public: float) -> DPSGDSchedule:
        """The public sampling schedule for ``n_public`` rows."""
        return dpsgd_schedule(n_public, self.expected_batch_size, epochs=self.epochs, steps=self.steps)

    def plan_for_noise_multiplier(
        self, noise_multiplier: float, delta: float, domain: EncodedDomain, n_public: float
    ) -> MethodPlan:
        """The plan for a given noise multiplier (what ``calibrate`` returns once sigma is found).

        Useful when sigma is chosen directly; the ledger then charges whatever epsilon the
        plan's event has at ``delta``.
        """
        if not isinstance(domain, EncodedDomain) or len(domain.sizes) == 0:
            raise ValueError("domain must be a non-empty EncodedDomain")
        if not isinstance(delta, (int, float)) or not 0 < float(delta) < 1:
            raise ValueError(f"DP-SGD needs 0 < delta < 1, got {delta!r}")
        sigma = float(noise_multiplier)
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier!r}")
        schedule = self.schedule(n_public)
        parameters = {
            "noise_multiplier": sigma,
            "sample_rate": schedule.sample_rate,
            "steps": schedule.steps,
            "expected_batch_size": schedule.normaliser,
            "max_grad_norm": self.clipping_bound(domain),
            "learning_rate": self.learning_rate,
            "optimizer": self.optimizer,
            "lr_schedule": self.lr_schedule,
            "latent_dim": self.latent_dim,
            "hidden_sizes": list(self.hidden_sizes),
            "domain_sizes": [int(k) for k in domain.sizes],
            "n_public": float(n_public),
            "epochs": self.epochs,
            "normalisation": "sum of clipped per-row gradients + noise, divided by expected_batch_size",
            "privacy_noise_seed": "withheld",
            "batch_sampling_seed": "withheld",
            "randomness": "Poisson batches and privacy noise drawn from OS-CSPRNG-seeded generators, "
            "never stored; the user's seed drives only initialisation and sampling",
            **self._model_parameters(),
        }
        return MethodPlan(
            method=self.name,
            event=dpsgd_event(schedule.sample_rate, sigma, schedule.steps),
            delta=float(delta),
            parameters=parameters,
            sampling="poisson",
        )

    def _model_parameters(self) -> dict:
        """Extra public parameters a subclass's model needs (none for the VAE)."""
        return {}

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        """Smallest noise multiplier whose DP-SGD event is (epsilon, delta)-DP; public inputs only."""
        epsilon = _check_positive_finite("epsilon", epsilon)
        if not isinstance(delta, (int, float)) or not 0 < float(delta) < 1:
            raise ValueError(f"DP-SGD needs 0 < delta < 1, got {delta!r}")
        schedule = self.schedule(n_public)
        sigma = _dpsgd_noise_multiplier(epsilon, float(delta), schedule.sample_rate, schedule.steps)
        return self.plan_for_noise_multiplier(sigma, float(delta), domain, n_public)

    # -- fitting (reads private data) ---------------------------------------------------------

    def _checked_parameters(self, plan: MethodPlan) -> dict:
        """The plan's parameters, after checking the plan is ours, Poisson, and self-consistent."""
        if not isinstance(plan, MethodPlan) or plan.method != self.name:
            raise ValueError(f"this plan is not a {self.name!r} plan")
        if plan.sampling != "poisson":
            raise ValueError(f"a {self.name} plan must use Poisson sampling")
        missing = [key for key in _REQUIRED_PARAMETERS if key not in plan.parameters]
        if missing:
            raise ValueError(f"plan parameters are missing {missing}")
        p = plan.parameters
        expected_event = dpsgd_event(p["sample_rate"], p["noise_multiplier"], p["steps"])
        if plan.event != expected_event:
            raise ValueError("the plan's event does not match its parameters; refusing to fit")
        _check_positive_finite("max_grad_norm", p["max_grad_norm"])
        _check_positive_finite("expected_batch_size", p["expected_batch_size"])
        return p

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
        p = self._checked_parameters(plan)
        sizes = [int(k) for k in p["domain_sizes"]]
        data = _validate_codes(codes, sizes)
        device = resolve_device(self.device)

        public_generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        model = TabularVAE(sizes, int(p["latent_dim"]), p["hidden_sizes"])
        model.reset_parameters(public_generator)
        model.to(device)

        grad_model = per_sample_gradient_module(model)
        optimizer = make_dp_optimizer(
            grad_model.parameters(),
            learning_rate=float(p["learning_rate"]),
            noise_multiplier=float(p["noise_multiplier"]),
            max_grad_norm=float(p["max_grad_norm"]),
            normaliser=float(p["expected_batch_size"]),
            generator=secret_torch_generator(device),
            optimizer=str(p["optimizer"]),
        )
        batch_rng = secret_numpy_rng()
        codes_t = torch.from_numpy(data).to(device)
        onehot = one_hot_codes(codes_t, sizes)
        sample_rate = float(p["sample_rate"])
        total_steps = int(p["steps"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer.original_optimizer,
            lambda step: learning_rate_factor(step, total_steps, str(p["lr_schedule"])),
        )
        latent_dim = int(p["latent_dim"])

        grad_model.train()
        for _ in tqdm(range(total_steps), desc="DP-SGD VAE", unit="step", disable=not progress):
            index = torch.from_numpy(poisson_sample_indices(len(data), sample_rate, batch_rng)).to(device)
            optimizer.zero_grad(set_to_none=True)
            eps = torch.randn((len(index), latent_dim), generator=public_generator).to(device)
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


def _dpsgd_noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The accounting subsystem's DP-SGD calibration (re-verified by the ledger's accountants)."""
    try:
        from dpsynth.accounting import dpsgd_noise_multiplier
    except ImportError:  # the package's re-export is not there yet
        from dpsynth.accounting.calibration import dpsgd_noise_multiplier
    return float(dpsgd_noise_multiplier(epsilon, delta, sample_rate, steps))
