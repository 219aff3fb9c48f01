"""The DP-SGD toolkit and the base class of every DP-SGD tabular method (VAE, GAN).

Privacy unit: one row of the private table. Neighbouring relation: add-or-remove-one row.

Guarantee. A method built on :class:`DPSGDMethod` runs ``steps`` iterations of DP-SGD (Abadi et
al. 2016) through Opacus (``GradSampleModule`` for per-sample gradients, ``DPOptimizer`` for
clipping, noise and normalisation) on the one network that reads private rows. Each iteration

1. draws a **Poisson** batch (:func:`poisson_sample_indices`): every row is included
   independently with probability ``q = expected_batch_size / n_public`` (so batches have random
   size, possibly zero);
2. computes each included row's gradient of its own loss (no layer mixes rows, there is no batch
   norm) and clips it to L2 norm ``max_grad_norm = C``;
3. adds ``N(0, (sigma * C)^2 I)`` to the sum of the clipped gradients and divides by a **public
   constant** (:func:`make_dp_optimizer`'s ``normaliser``; never the realised batch size nor the
   private row count).

Adding or removing one row changes the clipped sum by at most ``C`` in L2, so each iteration is the
Poisson-subsampled Gaussian mechanism with noise multiplier ``sigma``, and the whole fit is exactly
:func:`dpsgd_event` ``= SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)),
steps)`` -- the event the plan carries and the ledger charges. Everything else (optimiser update,
the model, ``sample``) is post-processing of the noisy gradients.

``q``, ``steps`` and the normaliser depend only on public inputs (:func:`dpsgd_schedule`): the
hyper-parameters and ``n_public`` (a public or DP-released row-count estimate), never
``len(codes)``. If ``n_public`` is wrong the guarantee still holds (Poisson sampling at rate ``q``
is analysed for any dataset size); only utility changes.

Randomness. Batch selection and privacy noise come from :mod:`dpsynth.randomness` (OS-CSPRNG
seeded generators, never stored or returned), drawn in this module only
(:meth:`DPSGDMethod._dp_optimizer`, :meth:`DPSGDMethod._poisson_batches`), so nothing written to disk -- in particular not the
user's seed -- reproduces them. The user's ``rng`` drives public choices only (initialisation,
latent noise, sampling). Caveat: Opacus' ``secure_mode`` needs ``torchcsprng``, which does not
exist for current torch, so noise is sampled with torch's ordinary ``normal`` from a
CSPRNG-seeded generator (not hardened against floating-point attacks, Mironov 2012).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from dp_accounting import dp_event
from torch import nn
from tqdm.auto import tqdm

from dpsynth.accounting.calibration import dpsgd_noise_multiplier
from dpsynth.devices import resolve_device
from dpsynth.randomness import secret_numpy_rng, secret_torch_generator
from dpsynth.tabular.methods.base import EncodedDomain, MethodPlan
from dpsynth.validation import positive_float, positive_int

if TYPE_CHECKING:  # opacus is imported lazily at fit time
    from opacus.optimizers import DPOptimizer

__all__ = [
    "DEFAULT_STEPS",
    "DPSGDMethod",
    "DPSGDSchedule",
    "FitSetup",
    "FittedCodeDecoder",
    "dpsgd_event",
    "dpsgd_schedule",
    "learning_rate_factor",
    "make_dp_optimizer",
    "mlp",
    "one_hot_codes",
    "per_sample_gradient_module",
    "poisson_sample_indices",
    "reset_linear_layers",
    "sample_codes_from_logits",
    "validate_codes",
]

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
    n_public = positive_float("n_public", n_public)
    batch = positive_float("expected_batch_size", expected_batch_size)
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs and steps")
    sample_rate = min(1.0, batch / n_public)
    if steps is None:
        n_steps = max(1, math.ceil(positive_float("epochs", epochs) / sample_rate))
    else:
        n_steps = positive_int("steps", steps)
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
    ``rng`` must come from :func:`dpsynth.randomness.secret_numpy_rng` in a private fit.
    """
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate!r}")
    return np.flatnonzero(rng.random(int(n_rows)) < sample_rate)


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
    public constant, and nothing else. ``generator`` must come from
    :func:`dpsynth.randomness.secret_torch_generator` in a private fit.
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


def validate_codes(codes: Any, sizes: Sequence[int]) -> np.ndarray:
    """Check the private codes against the public domain (shape, dtype, range).

    The messages name only public facts (the domain, the array's dimensions and dtype); which
    rows are out of range is never reported.
    """
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


def mlp(sizes: Sequence[int], activation: type[nn.Module] | None = None, **activation_options: Any) -> nn.Sequential:
    """``Linear`` layers between consecutive ``sizes`` with ``activation`` (default ReLU) between them.

    Only ``Linear`` and element-wise activations: Opacus computes exact per-sample gradients and
    no layer mixes rows of a batch.
    """
    activation = activation or nn.ReLU
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(int(sizes[i]), int(sizes[i + 1])))
        if i < len(sizes) - 2:
            layers.append(activation(**activation_options))
    return nn.Sequential(*layers)


def reset_linear_layers(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every linear layer of ``module`` (PyTorch's default scheme) from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def public_torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU torch generator seeded from the user's ``rng``: public randomness only (initialisation,
    latent noise), never privacy noise or batch selection."""
    return torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))


# --------------------------------------------------------------------------------------------
# The fitted model: a decoder from N(0, I) latents to per-column logits
# --------------------------------------------------------------------------------------------


class FittedCodeDecoder:
    """A DP-trained decoder (VAE decoder or GAN generator) from ``z ~ N(0, I)`` to per-column logits.

    ``sample`` is post-processing of the DP fit and never sees private data.
    """

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
# The method base: public planning and plan checks shared by every DP-SGD method
# --------------------------------------------------------------------------------------------

@dataclass
class FitSetup:
    """What a DP-SGD ``fit`` starts from, after the plan and the private codes were checked.

    ``parameters`` are the plan's (checked) public parameters, ``sizes`` the public domain,
    ``codes`` the private int codes, ``public_generator`` the torch generator seeded from the
    user's ``rng`` (public randomness only: initialisation, latent noise).
    """

    parameters: dict
    sizes: list[int]
    codes: np.ndarray
    device: torch.device
    public_generator: torch.Generator


#: Parameters every DP-SGD plan carries; ``fit`` refuses a plan without them.
REQUIRED_PARAMETERS = (
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


class DPSGDMethod:
    """Base of the DP-SGD tabular methods: public planning, calibration and plan checks.

    Privacy unit: one row; add-or-remove-one. ``calibrate`` returns a plan whose event
    ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)`` is the whole
    privacy cost of the subclass's ``fit`` (see the module docstring). Subclasses set ``name``,
    implement ``fit`` (reading private rows only through Poisson batches, :func:`make_dp_optimizer`
    and the :mod:`dpsynth.randomness` generators) and may override :meth:`clipping_bound`,
    :meth:`_model_parameters` and :attr:`extra_required_parameters`.

    Shared public hyper-parameters: ``latent_dim``, ``hidden_sizes``, ``expected_batch_size``,
    ``steps`` or ``epochs`` (at most one; default :data:`DEFAULT_STEPS` steps), ``max_grad_norm``
    (clipping bound C; ``None``: the subclass's public rule), ``learning_rate``, ``device``
    (``None``: CUDA if available, else CPU), ``optimizer`` (``adam``/``sgd``), ``lr_schedule``.
    """

    name: str = ""
    #: Plan parameters the subclass's ``fit`` needs beyond :data:`REQUIRED_PARAMETERS`.
    extra_required_parameters: tuple[str, ...] = ()

    def __init__(
        self,
        latent_dim: int,
        hidden_sizes: Sequence[int],
        expected_batch_size: int,
        epochs: float | None,
        steps: int | None,
        max_grad_norm: float | None,
        learning_rate: float,
        device: str | None,
        optimizer: str,
        lr_schedule: str,
    ) -> None:
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.hidden_sizes = tuple(positive_int("hidden size", h) for h in hidden_sizes)
        self.expected_batch_size = positive_int("expected_batch_size", expected_batch_size)
        if epochs is not None and steps is not None:
            raise ValueError("give at most one of epochs and steps")
        self.epochs = None if epochs is None else positive_float("epochs", epochs)
        self.steps = None if steps is None else positive_int("steps", steps)
        if self.epochs is None and self.steps is None:
            self.steps = DEFAULT_STEPS
        self.max_grad_norm = None if max_grad_norm is None else positive_float("max_grad_norm", max_grad_norm)
        self.learning_rate = positive_float("learning_rate", learning_rate)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {optimizer!r} (use 'adam' or 'sgd')")
        self.optimizer = optimizer
        learning_rate_factor(0, 1, lr_schedule)  # validates the name
        self.lr_schedule = lr_schedule
        self.device = device

    # -- planning (public inputs only) -------------------------------------------------------

    def clipping_bound(self, domain: EncodedDomain) -> float:
        """The per-row L2 clipping bound C (public); subclasses give the default rule."""
        if self.max_grad_norm is None:
            raise NotImplementedError(f"{type(self).__name__} must define its default clipping bound")
        return float(self.max_grad_norm)

    def schedule(self, n_public: float) -> DPSGDSchedule:
        """The public sampling schedule for ``n_public`` rows."""
        return dpsgd_schedule(n_public, self.expected_batch_size, epochs=self.epochs, steps=self.steps)

    def _model_parameters(self) -> dict:
        """Extra public parameters a subclass's model needs (recorded in the plan)."""
        return {}

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

    def calibrate(self, epsilon: float, delta: float, domain: EncodedDomain, n_public: float) -> MethodPlan:
        """Smallest noise multiplier whose DP-SGD event is (epsilon, delta)-DP; public inputs only.

        The multiplier comes from :func:`dpsynth.accounting.calibration.dpsgd_noise_multiplier`,
        which re-verifies it with the ledger's accountants.
        """
        epsilon = positive_float("epsilon", epsilon)
        if not isinstance(delta, (int, float)) or not 0 < float(delta) < 1:
            raise ValueError(f"DP-SGD needs 0 < delta < 1, got {delta!r}")
        schedule = self.schedule(n_public)
        sigma = float(dpsgd_noise_multiplier(epsilon, float(delta), schedule.sample_rate, schedule.steps))
        return self.plan_for_noise_multiplier(sigma, float(delta), domain, n_public)

    # -- checks before reading private data ---------------------------------------------------

    def _checked_parameters(self, plan: MethodPlan) -> dict:
        """The plan's parameters, after checking the plan is ours, Poisson, and self-consistent.

        Refuses a plan whose event does not follow from its parameters, so the ledger's charge is
        exactly what ``fit`` runs.
        """
        if not isinstance(plan, MethodPlan) or plan.method != self.name:
            raise ValueError(f"this plan is not a {self.name!r} plan")
        if plan.sampling != "poisson":
            raise ValueError(f"a {self.name} plan must use Poisson sampling")
        missing = [key for key in (*REQUIRED_PARAMETERS, *self.extra_required_parameters)
                   if key not in plan.parameters]
        if missing:
            raise ValueError(f"plan parameters are missing {missing}")
        p = plan.parameters
        expected_event = dpsgd_event(p["sample_rate"], p["noise_multiplier"], p["steps"])
        if plan.event != expected_event:
            raise ValueError("the plan's event does not match its parameters; refusing to fit")
        positive_float("max_grad_norm", p["max_grad_norm"])
        positive_float("expected_batch_size", p["expected_batch_size"])
        return p

    # -- the private part of a fit: the only code that draws privacy randomness -------------

    def _begin_fit(self, codes: Any, plan: MethodPlan, rng: np.random.Generator) -> FitSetup:
        """Check the plan and the private codes against the public domain, resolve the device."""
        p = self._checked_parameters(plan)
        sizes = [int(k) for k in p["domain_sizes"]]
        data = validate_codes(codes, sizes)
        return FitSetup(p, sizes, data, resolve_device(self.device), public_torch_generator(rng))

    def _dp_optimizer(
        self,
        params: Iterable[nn.Parameter],
        setup: FitSetup,
        *,
        normaliser: float,
        optimizer: str,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> "DPOptimizer":
        """The plan's DP optimiser (clip to ``max_grad_norm``, noise ``noise_multiplier``, divide by the
        public ``normaliser``) with its noise drawn from :func:`dpsynth.randomness.secret_torch_generator`."""
        p = setup.parameters
        return make_dp_optimizer(
            params,
            learning_rate=float(p["learning_rate"]),
            noise_multiplier=float(p["noise_multiplier"]),
            max_grad_norm=float(p["max_grad_norm"]),
            normaliser=float(normaliser),
            generator=secret_torch_generator(setup.device),
            optimizer=optimizer,
            betas=betas,
        )

    def _lr_schedulers(self, optimizers: Sequence[torch.optim.Optimizer], setup: FitSetup) -> list[Any]:
        """One public learning-rate schedule (the plan's ``lr_schedule`` over its ``steps``) per optimiser."""
        total_steps, schedule = int(setup.parameters["steps"]), str(setup.parameters["lr_schedule"])
        return [torch.optim.lr_scheduler.LambdaLR(opt, lambda t: learning_rate_factor(t, total_steps, schedule))
                for opt in optimizers]

    def _poisson_batches(self, setup: FitSetup, *, progress: bool, desc: str) -> Iterator[torch.Tensor]:
        """The plan's ``steps`` Poisson batches (row indices on the device, possibly empty), drawn
        from :func:`dpsynth.randomness.secret_numpy_rng`; the progress bar shows only the step count."""
        batch_rng = secret_numpy_rng()
        n_rows, sample_rate = len(setup.codes), float(setup.parameters["sample_rate"])
        for _ in tqdm(range(int(setup.parameters["steps"])), desc=desc, unit="step", disable=not progress):
            yield torch.from_numpy(poisson_sample_indices(n_rows, sample_rate, batch_rng)).to(setup.device)

    def fit(self, codes: np.ndarray, plan: MethodPlan, rng: np.random.Generator,
            progress: bool = True) -> FittedCodeDecoder:  # pragma: no cover - abstract
        """Train on private int codes ``(n, d)`` following ``plan``; costs exactly ``plan.event``.

        A subclass builds its model from ``self._begin_fit(...)`` and reads private rows only
        through ``self._poisson_batches(...)`` into a model trained by ``self._dp_optimizer(...)``.
        """
        raise NotImplementedError
