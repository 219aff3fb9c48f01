"""``dpsynth.text.generate``: DP synthetic texts by Private Evolution or private prediction.

Privacy unit: one private text (with its label when labelled). Guarantee: the returned texts (and
labels) are (epsilon, delta)-DP under adding or removing one text. Two methods:

* ``"pe"`` -- Private Evolution (Aug-PE): the public model writes candidates, private texts vote
  for their nearest candidate, the vote histogram gets Gaussian noise; proof in
  :mod:`dpsynth.text.pe.privacy`;
* ``"private_prediction"`` -- InvisibleInk-style private decoding over disjoint groups of private
  texts; proof in :mod:`dpsynth.text.privacy`;
* ``"auto"`` (default) -- the public rule of :func:`dpsynth.text.auto.choose_method`.

Every call has the same shape, in two halves:

1. :func:`prepare_generation` -- public inputs only, no texts: validate every argument
   (:mod:`dpsynth.text.request`), choose the method, plan and calibrate (:func:`plan_generation`,
   which is also what :func:`plan_summary` and the CLI print), check Ray, load the public model
   and, for PE, the embedder. Every error of a public argument is raised here, before anything is
   charged -- the CLI calls it before charging the source budget;
2. :meth:`PreparedGeneration.run` -- check the shape of the private arguments (sized, never read),
   charge the ledger, read the texts and run, complete the ledger entry.

:func:`generate` is the two in a row. Public by construction: the number of outputs
(``num_texts`` per label, never derived from the number of inputs), ``T``, the label set (declared
by the caller), the prompts, the model and every mechanism parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dpsynth.accounting import Ledger, LedgerFile
from dpsynth.constants import DEFAULT_DELTA
from dpsynth.devices import resolve_device
from dpsynth.text.auto import METHODS, choose_method, pe_schedule
from dpsynth.text.engine import model_device
from dpsynth.text.pe.run import PEPlan, plan_pe, run_pe
from dpsynth.text.private_prediction import (
    DEFAULT_MAX_EXAMPLE_TOKENS,
    PrivatePredictionPlan,
    plan_private_prediction,
    run_private_prediction,
)
from dpsynth.text.request import (
    DEFAULT_NUM_TEXTS,
    TextInputError,
    TextRequest,
    TooFewTextsError,
    check_inputs,
    check_int,
    validate_request,
)
from dpsynth.text.result import TextSynthesisResult
from dpsynth.text.runtime import quiet_transformers

DEFAULT_GROUP_SIZE = "auto"
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_K = None  # the method's own: 50 for private prediction, 200 for pe
DEFAULT_METHOD = "auto"

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_NUM_TEXTS",
    "GenerationPlan",
    "PreparedGeneration",
    "TextInputError",
    "TextSynthesisResult",
    "TooFewTextsError",
    "generate",
    "plan_generation",
    "prepare_generation",
]


def generate(
    texts: Sequence[str],
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    labels: Sequence[Any] | None = None,
    label_set: Sequence[Any] | None = None,
    num_texts: int | Mapping[str, int] | None = None,
    method: str = DEFAULT_METHOD,
    model: Any = None,
    instruction: str | None = None,
    group_size: int | str = DEFAULT_GROUP_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = DEFAULT_TOP_K,
    max_example_tokens: int = DEFAULT_MAX_EXAMPLE_TOKENS,
    iterations: int | None = None,
    variations: int | None = None,
    variation_kinds: Sequence[str] | None = None,
    vote_space: str | None = None,
    threshold: float | None = None,
    embedder: Any = None,
    seed: int | None = None,
    ledger: Ledger | LedgerFile | None = None,
    source_name: str = "texts",
    device: str | None = None,
    max_batch_rows: int | None = None,
    progress: bool = True,
    backend: str = "memory",
    ray_address: str | None = None,
    ray_workers: Any = 2,
) -> TextSynthesisResult:
    """Generate DP synthetic texts similar to ``texts``.

    Privacy unit: one text (with its label). The output is (epsilon, delta)-DP under
    add-or-remove one text.

    Args:
        texts: the private texts (a sized sequence; not read before the ledger is charged).
        epsilon, delta: the budget of this call (delta must be in (0, 1)).
        labels: optional private label per text; requires ``label_set``.
        label_set: the PUBLIC label set (declared by the caller, never read from the data); each
            label gets ``num_texts`` outputs (or ``num_texts[label]``). Texts with a label outside
            the set are refused (after the charge: the labels are private data).
        num_texts: number of synthetic texts (per label), public; default ``DEFAULT_NUM_TEXTS``.
        method: "auto" (default: "pe", :func:`dpsynth.text.auto.choose_method`), "pe" or
            "private_prediction".
        model: ``None`` (SmolLM2-135M-Instruct), a local model path / GGUF / cached hub id, a
            ``(model, tokenizer)`` pair or a ``LoadedModel`` (see :mod:`dpsynth.text.models`).
        instruction: the public task description placed in every prompt.
        group_size: private prediction's ``B``: "auto" (public rule, :mod:`dpsynth.text.auto`) or
            an integer. Larger ``B`` allows a larger clip at the same epsilon and costs more compute.
        max_new_tokens: ``T``, public maximum length of every output (tokens).
        temperature: sampling temperature (public).
        top_k: public sampling set size, 0 = the whole vocabulary. ``None`` (default): 50 for
            private prediction (its Top-k+ candidate set from public logits) and 200 for pe (the
            public model's pool; top-k 50 made it too narrow for the vote to match the private
            texts: docs/text-bench.md).
        max_example_tokens: private prediction truncates each private text to this many tokens.
        iterations, variations, threshold: PE's public number of iterations, variations per kept
            candidate, and noisy-count threshold (default ``2 sigma``). ``None`` (default) for the
            first two: 6 and 3 on a CPU, 10 and 4 on a GPU, when the budget keeps that many
            rounds' noise multiplier at most 5 (epsilon 3 at delta 1e-6 does, epsilon 1 and 2 do not),
            else 3 and 3 (:func:`dpsynth.text.auto.pe_schedule`, measured in docs/text-bench.md).
        variation_kinds: PE's variation prompts, cycled per kept candidate: any of
            ``"paraphrase"``, ``"fill_in"``, ``"example"`` (default paraphrase and fill-in, as in
            Aug-PE; :mod:`dpsynth.text.pe.variation`). Public; recorded in the ledger.
        vote_space: where PE's private texts measure which candidate is nearest: ``"centred"``
            (default: cosine after subtracting the mean of the label's candidate embeddings, a
            public value; it stops votes piling onto generic "hub" candidates) or ``"raw"`` (plain
            cosine). Public; recorded in the ledger (:mod:`dpsynth.text.pe.histogram`).
        embedder: PE's sentence embedder: ``None`` (offline all-MiniLM-L6-v2), a
            sentence-transformers folder, or a function ``texts -> array``.
        seed: non-private choices only (private prediction's decoding order). Privacy noise comes
            from OS entropy (:mod:`dpsynth.randomness`) and cannot be seeded.
        ledger: an existing :class:`~dpsynth.accounting.Ledger` or
            :class:`~dpsynth.accounting.LedgerFile` to charge (privacy unit one text); default a
            new in-memory ledger with budget (epsilon, delta).
        source_name: name of the source recorded in a new ledger.
        device: torch device (default CUDA when available, else CPU).
        max_batch_rows: rows per forward batch (default 64 on CPU, 1024 on CUDA).
        progress: show progress (token bars, PE iterations).
        backend: ``memory`` (default) or ``ray``: private-prediction groups, or PE's public
            candidates (public prompts only; private texts, embeddings and votes stay in this
            process), are decoded on ``ray_workers`` Ray actors (a number, or actors from
            :func:`dpsynth.text.ray_backend.start_workers`), cluster ``ray_address`` (default a
            local one); same mechanism, same ledger entry (docs/scale.md). Before the charge, Ray
            must be importable, the cluster reachable and hold one CPU per worker (and one GPU
            per worker with ``device="cuda"``, which then names the actors' device: this process
            loads the model on CPU and needs no GPU).

    Raises:
        InvalidBudgetError / TextInputError (ValueError): bad budget or parameter (nothing read).
        ModelNotFoundError / ModelLoadError / EmbedderNotFoundError: the public model, the device
        or the embedder cannot be loaded (nothing read or spent).
        RayUnavailableError / RayConnectError / RayResourcesError: ``backend="ray"`` without Ray,
        with an unreachable address, or on a cluster too small for the workers (nothing spent).
        No input size is refused (not ``n < B``, not an empty input) and no warning depends on it:
        whether a release exists never depends on the number of texts.
        BudgetExceededError: the ledger cannot afford the call (no text read, tokenized or embedded).
        TypeError: a text is not a string (found after the charge; the charge stays; the message
        names no text, position or count, nor does that of a label outside ``label_set``).
    """
    check_inputs(texts, labels, label_set, ledger)  # cheap, before the model is loaded
    prepared = prepare_generation(
        epsilon=epsilon, delta=delta, label_set=label_set, num_texts=num_texts, method=method, model=model,
        instruction=instruction, group_size=group_size, max_new_tokens=max_new_tokens, temperature=temperature,
        top_k=top_k, max_example_tokens=max_example_tokens, iterations=iterations, variations=variations,
        variation_kinds=variation_kinds, vote_space=vote_space, threshold=threshold, embedder=embedder,
        seed=seed, device=device, max_batch_rows=max_batch_rows, backend=backend, ray_address=ray_address,
        ray_workers=ray_workers,
    )
    return prepared.run(texts, labels, ledger=ledger, source_name=source_name, progress=progress)


@dataclass(frozen=True)
class GenerationPlan:
    """The public plan of one call: the chosen method, the validated request and the mechanism's
    plan (:class:`~dpsynth.text.pe.run.PEPlan` or
    :class:`~dpsynth.text.private_prediction.PrivatePredictionPlan`). No data, no model."""

    method: str
    request: TextRequest
    mechanism: PEPlan | PrivatePredictionPlan

    def summary(self) -> dict[str, Any]:
        """What the CLI prints before generating: for private prediction ``B``, ``T``, ``C``; for PE
        iterations, variations, sigma, threshold, vote space."""
        plan = self.mechanism
        if isinstance(plan, PEPlan):
            return {"method": "pe", "iterations": plan.privacy.iterations, "variations": plan.variations,
                    "noise_multiplier": plan.privacy.noise_multiplier, "threshold": plan.privacy.threshold,
                    "vote_space": plan.vote_space, "max_new_tokens": self.request.max_new_tokens}
        return {"method": "private_prediction", "group_size": plan.group_size,
                "group_size_rule": "auto" if plan.group_size_rule.startswith("auto") else "given",
                "max_new_tokens": self.request.max_new_tokens, "clip": plan.privacy.clip}


def plan_generation(
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    label_set: Sequence[Any] | None = None,
    num_texts: int | Mapping[str, int] | None = None,
    method: str = DEFAULT_METHOD,
    model: Any = None,
    instruction: str | None = None,
    group_size: int | str = DEFAULT_GROUP_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = DEFAULT_TOP_K,
    max_example_tokens: int = DEFAULT_MAX_EXAMPLE_TOKENS,
    iterations: int | None = None,
    variations: int | None = None,
    variation_kinds: Sequence[str] | None = None,
    vote_space: str | None = None,
    threshold: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    backend: str = "memory",
) -> GenerationPlan:
    """Validate the public arguments, choose the method and calibrate it (no texts, no model loaded;
    ``model`` is only inspected for its device when PE's schedule depends on it)."""
    request = validate_request(
        epsilon=epsilon, delta=delta, label_set=label_set, num_texts=num_texts, instruction=instruction,
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed,
    )
    if method not in METHODS:
        raise TextInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    chosen = choose_method(method)
    request = request.for_method(chosen)
    if chosen == "pe":  # the device's schedule where the caller set none (public: dpsynth.text.auto)
        iterations, variations = pe_schedule(_device_type(device, backend, model), request.budget.epsilon,
                                             request.budget.delta, iterations, variations)
        check_int("iterations", iterations)
        mechanism: PEPlan | PrivatePredictionPlan = plan_pe(
            request, iterations, variations, threshold, variation_kinds, vote_space)
    else:
        mechanism = plan_private_prediction(request, group_size, max_example_tokens)
    return GenerationPlan(chosen, request, mechanism)


@dataclass(frozen=True)
class PreparedGeneration:
    """A call prepared from public inputs (:func:`prepare_generation`): plan, loaded public model,
    PE's embedder, rows per forward batch, Ray workers. :meth:`run` charges and runs it on texts."""

    plan: GenerationPlan
    loaded: Any
    rows: int
    embed: Any = None
    embedder_name: str | None = None
    ray: Any = None

    @property
    def method(self) -> str:
        return self.plan.method

    def summary(self) -> dict[str, Any]:
        """:meth:`GenerationPlan.summary` (what this call will run)."""
        return self.plan.summary()

    def run(
        self,
        texts: Sequence[str],
        labels: Sequence[Any] | None = None,
        *,
        ledger: Ledger | LedgerFile | None = None,
        source_name: str = "texts",
        progress: bool = True,
    ) -> TextSynthesisResult:
        """Check the private arguments' shape (sized, not read), charge ``ledger`` (default: a new
        in-memory ledger with the plan's budget), read the texts, run, complete the entry."""
        request = self.plan.request
        check_inputs(texts, labels, request.label_set, ledger)
        with quiet_transformers():
            if isinstance(self.plan.mechanism, PEPlan):
                return run_pe(
                    texts, labels, request, self.plan.mechanism, self.loaded, embed=self.embed,
                    embedder_name=str(self.embedder_name), ledger=ledger, source_name=source_name, rows=self.rows,
                    progress=progress, ray=self.ray,
                )
            return run_private_prediction(
                texts, labels, request, self.plan.mechanism, self.loaded, ledger=ledger, source_name=source_name,
                rows_per_batch=self.rows, progress=progress, ray=self.ray,
            )


def prepare_generation(
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    label_set: Sequence[Any] | None = None,
    num_texts: int | Mapping[str, int] | None = None,
    method: str = DEFAULT_METHOD,
    model: Any = None,
    instruction: str | None = None,
    group_size: int | str = DEFAULT_GROUP_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = DEFAULT_TOP_K,
    max_example_tokens: int = DEFAULT_MAX_EXAMPLE_TOKENS,
    iterations: int | None = None,
    variations: int | None = None,
    variation_kinds: Sequence[str] | None = None,
    vote_space: str | None = None,
    threshold: float | None = None,
    embedder: Any = None,
    seed: int | None = None,
    device: str | None = None,
    max_batch_rows: int | None = None,
    backend: str = "memory",
    ray_address: str | None = None,
    ray_workers: Any = 2,
) -> PreparedGeneration:
    """The public half of :func:`generate` (same arguments, less the texts, labels, ledger, source
    name and progress): every public argument is checked, the method planned and calibrated
    (:func:`plan_generation`), Ray checked, the public model and (PE) the embedder loaded. Nothing
    private is touched and nothing is charged; every error of a public argument is raised here."""
    from dpsynth.text.models import load_causal_lm

    plan = plan_generation(
        epsilon=epsilon, delta=delta, label_set=label_set, num_texts=num_texts, method=method, model=model,
        instruction=instruction, group_size=group_size, max_new_tokens=max_new_tokens, temperature=temperature,
        top_k=top_k, max_example_tokens=max_example_tokens, iterations=iterations, variations=variations,
        variation_kinds=variation_kinds, vote_space=vote_space, threshold=threshold, seed=seed, device=device,
        backend=backend,
    )
    if max_batch_rows:  # None or 0: the device's default, below
        check_int("max_batch_rows", max_batch_rows, minimum=2)
    ray = None
    if backend != "memory":  # public arguments, Ray reachable, enough CPUs/GPUs
        from dpsynth.text.ray_backend import WorkerSpec, check_ray_request

        ray = check_ray_request(backend, plan.method, ray_workers, ray_address, device)
        if isinstance(ray[0], WorkerSpec) and ray[0].device == "cuda" and max_batch_rows is None:
            max_batch_rows = 1024  # the in-process default on a GPU
        device = "cpu"  # the actors decode (on `device`); this process only tokenises and ships the weights
    embed, embedder_name = None, None
    with quiet_transformers():
        loaded = load_causal_lm(model, device)
        if plan.method == "pe":
            from dpsynth.text.embeddings import load_embedder

            embed, embedder_name = load_embedder(embedder)
    rows = max_batch_rows or (64 if str(model_device(loaded.model)) == "cpu" else 1024)
    return PreparedGeneration(plan, loaded, rows, embed, embedder_name, ray)


def _device_type(device: str | None, backend: str, model: Any = None) -> str:
    """The device type that decides PE's default schedule: where the public model will decode.
    On ``backend="ray"`` the actors' (:func:`dpsynth.text.ray_backend.worker_device`; the driver
    needs no GPU); with no ``device``, a model object passed in keeps its placement
    (:func:`dpsynth.text.models.load_causal_lm`), so its device; else this machine's default."""
    if backend == "ray":
        from dpsynth.text.ray_backend import worker_device

        return worker_device(device)
    if device is None:
        from dpsynth.text.models import LoadedModel

        if isinstance(model, LoadedModel):
            return resolve_device(model.device).type
        if isinstance(model, tuple) and len(model) == 2 and hasattr(model[0], "parameters"):
            first = next(iter(model[0].parameters()), None)
            if first is not None:
                return first.device.type
    return resolve_device(device).type


def plan_summary(
    *,
    epsilon: float,
    delta: float = DEFAULT_DELTA,
    method: str = DEFAULT_METHOD,
    num_texts_total: int,
    group_size: int | str = DEFAULT_GROUP_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = DEFAULT_TEMPERATURE,
    iterations: int | None = None,
    variations: int | None = None,
    threshold: float | None = None,
    device: str | None = None,
    backend: str = "memory",
) -> dict[str, Any]:
    """The method and mechanism parameters a call with these PUBLIC inputs will use (no data, no
    model): :meth:`GenerationPlan.summary` of :func:`plan_generation` for ``num_texts_total``
    unlabelled outputs -- the same code path as :func:`prepare_generation`.

    For private prediction: ``B``, ``T``, ``C``; for PE: iterations, variations, sigma,
    threshold.
    """
    return plan_generation(
        epsilon=epsilon, delta=delta, method=method, num_texts=num_texts_total, group_size=group_size,
        max_new_tokens=max_new_tokens, temperature=temperature, iterations=iterations, variations=variations,
        threshold=threshold, device=device, backend=backend,
    ).summary()
