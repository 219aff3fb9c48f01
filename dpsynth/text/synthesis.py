"""``dpsynth.text.generate``: DP synthetic texts by Private Evolution or private prediction.

Privacy unit: one private text (with its label when labelled). Guarantee: the returned texts (and
labels) are (epsilon, delta)-DP under adding or removing one text. Two methods:

* ``"pe"`` -- Private Evolution (Aug-PE): the public model writes candidates, private texts vote
  for their nearest candidate, the vote histogram gets Gaussian noise; proof in
  :mod:`dpsynth.text.pe.privacy`;
* ``"private_prediction"`` -- InvisibleInk-style private decoding over disjoint groups of private
  texts; proof in :mod:`dpsynth.text.privacy`;
* ``"auto"`` (default) -- the public rule of :func:`dpsynth.text.auto.choose_method`.

Every call has the same shape: validate (:mod:`dpsynth.text.request`) -> plan (calibrate from
public inputs) -> load the public model -> charge the ledger -> read the texts and run ->
complete the ledger entry. Public by construction: the number of outputs (``num_texts`` per label,
never derived from the number of inputs), ``T``, the label set (declared by the caller), the
prompts, the model and every mechanism parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dpsynth.accounting import Ledger, LedgerFile
from dpsynth.constants import DEFAULT_DELTA
from dpsynth.devices import resolve_device
from dpsynth.text.auto import METHODS, choose_method, pe_schedule
from dpsynth.text.pe.run import plan_pe, run_pe
from dpsynth.text.private_prediction import (
    DEFAULT_MAX_EXAMPLE_TOKENS,
    plan_private_prediction,
    run_private_prediction,
)
from dpsynth.text.request import (
    DEFAULT_NUM_TEXTS,
    LargeGroupsWarning,
    TextInputError,
    TooFewTextsError,
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
    "LargeGroupsWarning",
    "TextInputError",
    "TextSynthesisResult",
    "TooFewTextsError",
    "generate",
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
        RayUnavailableError / RayConnectError / RayResourcesError: ``backend="ray"`` without Ray,
        with an unreachable address, or on a cluster too small for the workers (nothing spent).
        No input size is refused (not ``n < B``, not an empty input: a ``NoTextsWarning`` then):
        whether a release exists never depends on the number of texts.
        BudgetExceededError: the ledger cannot afford the call (no text read, tokenized or embedded).
        TypeError: a text is not a string (found after the charge; the charge stays).
    """
    from dpsynth.text.models import load_causal_lm

    request = validate_request(
        texts, epsilon=epsilon, delta=delta, labels=labels, label_set=label_set, num_texts=num_texts,
        instruction=instruction, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
        seed=seed, ledger=ledger,
    )
    if method not in METHODS:
        raise TextInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    chosen = choose_method(method)
    request = request.for_method(chosen)
    if chosen == "pe":  # the device's schedule where the caller set none (public: dpsynth.text.auto)
        iterations, variations = pe_schedule(_device_type(device, backend, model), request.budget.epsilon,
                                             request.budget.delta, iterations, variations)
    ray = None
    if backend != "memory":  # before the charge: public arguments, Ray reachable, enough CPUs/GPUs
        from dpsynth.text.ray_backend import WorkerSpec, check_ray_request

        ray = check_ray_request(backend, chosen, ray_workers, ray_address, device)
        if isinstance(ray[0], WorkerSpec) and ray[0].device == "cuda" and max_batch_rows is None:
            max_batch_rows = 1024  # the in-process default on a GPU
        device = "cpu"  # the actors decode (on `device`); this process only tokenises and ships the weights
    with quiet_transformers():
        if chosen == "pe":
            pe_plan = plan_pe(request, iterations, variations, threshold, variation_kinds, vote_space)
            loaded = load_causal_lm(model, device)
            return run_pe(
                texts, labels, request, pe_plan, loaded, embedder=embedder, ledger=ledger,
                source_name=source_name, max_batch_rows=max_batch_rows, progress=progress, ray=ray,
            )
        pp_plan = plan_private_prediction(request, group_size, max_example_tokens)
        loaded = load_causal_lm(model, device)
        return run_private_prediction(
            texts, labels, request, pp_plan, loaded, ledger=ledger, source_name=source_name,
            max_batch_rows=max_batch_rows, progress=progress, ray=ray,
        )


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
    """The method and mechanism parameters a call with these PUBLIC inputs will use (no data).

    For private prediction: ``B``, ``T``, ``C``; for PE: iterations, variations, sigma,
    threshold. The CLI prints this before generating.
    """
    from dpsynth.text.auto import auto_group_size
    from dpsynth.text.pe.privacy import calibrate_pe
    from dpsynth.text.privacy import calibrate_text_mechanism

    if method not in METHODS:
        raise TextInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    chosen = choose_method(method)
    if chosen == "pe":
        iterations, variations = pe_schedule(_device_type(device, backend), epsilon, delta, iterations, variations)
        pe = calibrate_pe(epsilon, delta, iterations, threshold)
        return {"method": "pe", "iterations": pe.iterations, "variations": variations,
                "noise_multiplier": pe.noise_multiplier, "threshold": pe.threshold,
                "max_new_tokens": max_new_tokens}
    size = (
        auto_group_size(epsilon, delta, max_new_tokens, temperature, num_texts_total)
        if group_size == "auto" else int(group_size)
    )
    plan = calibrate_text_mechanism(epsilon, delta, size, max_new_tokens, temperature)
    return {"method": "private_prediction", "group_size": size, "group_size_rule": str(group_size),
            "max_new_tokens": max_new_tokens, "clip": plan.clip}
